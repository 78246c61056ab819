from django.apps import AppConfig


class RemittancesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "remittances"
    verbose_name = "Remittances (835)"
