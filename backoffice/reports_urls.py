"""The managers' dashboard URL (issue 12 item 3), included from config/urls.py under admin/reports/."""

urlpatterns = []
