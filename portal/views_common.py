"""What every portal page shares: the practice's name and colour, the navigation, the form key of
money forms, and turning a service's refusal into a message on the form."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from ledger.models import Practice

# (url name, label): the signed-in patient's navigation, in this order
NAV = (
    ("portal:home", "Home"),
    ("portal:credits", "Credits"),
    ("portal:pay", "Pay"),
    ("portal:buy", "Buy credits"),
    ("portal:payments", "Payments"),
    ("portal:refunds", "Refunds"),
)


def nav_links(request) -> list[dict]:
    out = []
    for name, label in NAV:
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        current = request.path == url if name == "portal:home" else request.path.startswith(url)
        out.append({"url": url, "label": label, "current": current})
    return out


def render_portal(request, template: str, context: dict | None = None, *, practice=None, status: int = 200):
    """Render a portal page: `practice` brands it (the signed-in patient's by default)."""
    patient = getattr(request, "patient", None)
    practice = practice or (patient.practice if patient is not None else None)
    ctx = {"patient": patient, "practice": practice, "nav": nav_links(request) if patient is not None else [],
           **(context or {})}
    return render(request, f"portal/{template}", ctx, status=status)


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


@require_GET
@cache_control(max_age=300, public=True)
def brand_css(request, practice_id: int):
    """The practice's colour as a style sheet (the CSP allows no inline style)."""
    practice = get_object_or_404(Practice.objects.only("portal_colour"), pk=practice_id)
    return HttpResponse(f":root {{ --brand: {practice.portal_colour}; }}\n", content_type="text/css")
