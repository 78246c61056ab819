"""/api/v1/... (the API), /api/schema/ (OpenAPI 3), /api/docs/ (Swagger UI), /api/redoc/.
Paths have no trailing slash; anything else under /api/ is a JSON 404 (the catch-all matches any
character, a newline too: `.` alone does not, and a path such as "remittance-files/e\n" then fell
through to Django's HTML 404)."""

from django.urls import include, path, re_path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)
from rest_framework.routers import SimpleRouter

from api import (
    views,
    views_adjudication,
    views_adjudication_lists,
    views_money,
    views_remittances,
    views_reports,
    views_staff,
)
from api.exceptions import not_found_view

router = SimpleRouter(trailing_slash=False)
router.register("payers", views.PayerViewSet, basename="payer")
router.register("patients", views.PatientViewSet, basename="patient")
router.register("encounters", views.EncounterViewSet, basename="encounter")
router.register("claims", views.ClaimViewSet, basename="claim")
router.register("payments", views_money.PaymentViewSet, basename="payment")
router.register("credits", views_money.CreditViewSet, basename="credit")
router.register("refunds", views_money.RefundViewSet, basename="refund")
router.register("manual-credits", views_money.ManualCreditViewSet, basename="manual-credit")
router.register("credit-imports", views_money.CreditImportViewSet, basename="credit-import")
router.register("remittance-files", views_remittances.RemittanceFileViewSet, basename="remittance-file")
router.register("remittance-claims", views_remittances.RemittanceClaimViewSet, basename="remittance-claim")
router.register("nightly-runs", views_remittances.NightlyRunViewSet, basename="nightly-run")
router.register("memberships", views_staff.MembershipViewSet, basename="membership")
router.register("cases", views_adjudication.CaseViewSet, basename="case")
router.register("rules", views_adjudication.ClockRuleViewSet, basename="clock-rule")
router.register("refund-work-list", views_adjudication_lists.RefundWorkListViewSet, basename="refund-work-list")
router.register("unclaimed-property", views_adjudication_lists.UnclaimedPropertyViewSet, basename="unclaimed-property")
router.register("audit-runs", views_reports.AuditRunViewSet, basename="audit-run")
router.register("audit-findings", views_reports.AuditFindingViewSet, basename="audit-finding")
router.register("case-reviews", views_reports.CaseReviewViewSet, basename="case-review")
router.register("measures", views_reports.MeasuresViewSet, basename="measures")
router.register("reconciliation", views_reports.ReconciliationViewSet, basename="reconciliation")
router.register("reports", views_reports.ReportCatalogViewSet, basename="report")
router.register("exports", views_reports.ExportJobViewSet, basename="export")
router.register("cms838-reports", views_reports.Cms838ReportViewSet, basename="cms838-report")

v1 = [
    path("token", views.TokenView.as_view(), name="token"),
    path("practice", views.PracticeView.as_view(), name="practice"),
    *router.urls,
]

app_name = "api"
urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    re_path(r"^[\s\S]*$", not_found_view),  # any character, a newline too
]
