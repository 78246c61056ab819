from importlib import import_module

from django.apps import AppConfig


class ReportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reports"
    verbose_name = "Audits and reports"

    def ready(self):
        # every exportable report registers itself when its module is imported
        import_module("reports.exports.catalog")
        import_module("reports.audits")
