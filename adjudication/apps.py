from django.apps import AppConfig


class AdjudicationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "adjudication"
