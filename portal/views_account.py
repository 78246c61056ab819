"""Portal accounts (rule 23): setting the password from an invitation or reset link (which also
verifies the e-mail address), signing in and out."""

from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth.forms import SetPasswordForm
from django.shortcuts import redirect
from django.urls import path
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.http import require_POST

from ledger.models import Patient
from portal.models import PortalEvent
from portal.services import event_record, portal_tokens
from portal.views_common import client_ip, render_portal


def _link_user(uidb64: str, token: str):
    try:
        user = get_user_model().objects.get(pk=int(force_str(urlsafe_base64_decode(uidb64))))
    except (TypeError, ValueError, OverflowError, get_user_model().DoesNotExist):
        return None
    return user if portal_tokens.check_token(user, token) else None


def activate(request, uidb64: str, token: str):
    """The invitation (or reset) link: a new password for the patient's login. The link works once."""
    user = _link_user(uidb64, token)
    patient = Patient.objects.select_related("practice").filter(user=user).first() if user else None
    if patient is None or user.is_staff or user.is_superuser:
        return render_portal(request, "account/link_invalid.html", status=400)
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        first = not user.has_usable_password()
        form.save()
        event_record(patient=patient, kind=PortalEvent.Kind.ACTIVATED if first else PortalEvent.Kind.PASSWORD_RESET,
                     actor=user, ip=client_ip(request),
                     detail="Password set from the invitation; e-mail verified" if first else "Password reset")
        messages.success(request, "Your password is set. Sign in with your e-mail address and the new password.")
        return redirect("portal:login")
    return render_portal(request, "account/activate.html", {"form": form}, practice=patient.practice)


@require_POST
def sign_out(request):
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("portal:login")


urlpatterns = [
    path("activate/<uidb64>/<token>/", activate, name="activate"),
    path("logout/", sign_out, name="logout"),
]
