"""The managers' dashboard URL (issue 12 item 3), included from config/urls.py under admin/reports/.

The page is /admin/reports/dashboard/ named "admin:reports_dashboard", inside the admin site (its
login, its look, its namespace). A URLconf included beside the admin cannot add a name to the admin's
namespace, so this module, imported by config/urls.py just before `admin.site.urls` is read, puts the
page at the front of the admin site's own URLs (wrapped in `admin_view`: staff login required). This
URLconf itself then has no patterns of its own."""

from django.contrib import admin
from django.urls import path

from backoffice.views.reports_dashboard import dashboard_view

urlpatterns: list = []


def _with_dashboard(get_urls):
    def get_urls_with_dashboard():
        return [path("reports/dashboard/", admin.site.admin_view(dashboard_view), name="reports_dashboard"),
                *get_urls()]
    get_urls_with_dashboard.settle_dashboard = True
    return get_urls_with_dashboard


if not getattr(admin.site.get_urls, "settle_dashboard", False):
    admin.site.get_urls = _with_dashboard(admin.site.get_urls)
