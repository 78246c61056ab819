from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/reports/", include("backoffice.reports_urls")),  # the managers' dashboard (before the admin's own)
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("portal/", include("portal.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
