from django.apps import AppConfig
from django.utils.module_loading import import_string

from credits.signals import payer_credit_closed


class AdjudicationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "adjudication"

    def ready(self):
        # The apps below adjudication notify it by signals (they never import it): a payer credit
        # closed by an 835 recoupment resolves its case (adjudication/recoupment.py). The receiver's
        # module uses the models, which are loaded only now (not when this module is imported).
        receiver = import_string("adjudication.recoupment.payer_credit_closed_received")
        payer_credit_closed.connect(receiver, dispatch_uid="adjudication-recoupment")
