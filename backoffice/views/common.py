"""What every back-office page shares: the user's practices, tenancy lookups, calling a service
from a form, rendering a page, admin URLs and money formatting."""

from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse

from backoffice import forms as f
from ledger.access import practice_ids_for
from ledger.errors import SettleError

# --- helpers ---------------------------------------------------------------------------------------------

def user_practice_ids(request) -> list[int]:
    """The practices the request's user may see, computed once per request."""
    if not hasattr(request, "_settle_practice_ids"):
        user = request.user
        request._settle_practice_ids = practice_ids_for(user) if user.is_active and user.is_staff else []
    return request._settle_practice_ids


practice_ids = user_practice_ids  # the views' short name


def require_member(model_admin, request) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def in_scope_or_404(request, queryset, **lookup):
    """The object matching `lookup` within the user's practices, or a 404 (never another
    practice's row, whatever id is in the URL)."""
    if not request.user.is_superuser:
        queryset = queryset.filter(practice_id__in=practice_ids(request))
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.")
    return obj


def run_service(form, fn, *, fields: dict | None = None, **kwargs):
    """Call a service; on a refusal put the message on `form` and return None."""
    try:
        return fn(**kwargs)
    except SettleError as exc:
        f.add_service_error(form, exc, fields=fields)
    except IntegrityError as exc:
        rule = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        form.add_error(None, f"Refused by the database rule {rule}." if rule else "Refused by a database rule.")
    return None


def render_page(model_admin, request, template: str, *, title: str, crumbs=(), **context) -> TemplateResponse:
    opts = model_admin.model._meta
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, template, {
        **model_admin.admin_site.each_context(request), "title": title, "crumbs": list(crumbs), "opts": opts,
        "app_label": opts.app_label, **context,
    })


_URL_TEMPLATES: dict = {}


def admin_url(name: str, *args) -> str:
    """`reverse("admin:<name>", args=args)` for integer ids, without resolving the pattern for every
    row of a list (a list page links each of its 100 rows several times)."""
    template = _URL_TEMPLATES.get((name, len(args)))
    if template is None:
        marks = [987654321 + i for i in range(len(args))]
        template = reverse(f"admin:{name}", args=marks)
        for i, mark in enumerate(marks):
            template = template.replace(str(mark), f"{{{i}}}")
        _URL_TEMPLATES[(name, len(args))] = template
    return template.format(*(int(a) for a in args))


def patient_url(patient_id: int, tab: str = "") -> str:
    return admin_url("ledger_patient_change", patient_id) + (f"#tab-{tab}" if tab else "")


def patient_crumbs(patient) -> list:
    return [(reverse("admin:credits_patientresponsibility_changelist"), "Patient responsibility"),
            (patient_url(patient.pk), str(patient))]


def money(value) -> str:
    return f"{Decimal(value):,.2f}"
