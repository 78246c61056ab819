"""Query filters (django-filter) for the list endpoints. Every list is already limited to the
token's practice; these narrow it further. Unknown values are a 400, not an empty list."""

from datetime import UTC

import django_filters as df
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from credits.models import Credit, NightlyRun, Refund
from ledger.models import Claim, Encounter, Patient, Payer, Payment
from remittances.models import RemittanceClaim, RemittanceFile


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 2**63 - 1})
class IdFilter(df.NumberFilter):
    field_class = forms.IntegerField


class StrictBooleanField(forms.Field):
    """true/false (or 1/0); anything else is a 400 (django-filter would read "null" or "maybe" as no filter)."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")


class StrictBooleanFilter(df.BooleanFilter):
    field_class = StrictBooleanField


class UtcDateTimeField(IsoDateTimeField):
    """ISO 8601 with an offset, read and turned into UTC here: PostgreSQL refuses offsets beyond ±15:59."""

    def to_python(self, value):
        value = super().to_python(value)
        try:
            return value.astimezone(UTC) if value is not None and value.tzinfo else value
        except OverflowError:
            raise forms.ValidationError("The date-time is out of range.", code="invalid") from None


class UtcDateTimeFilter(df.IsoDateTimeFilter):
    field_class = UtcDateTimeField


def ids(help_text, field_name=None):
    return IdFilter(field_name=field_name, min_value=1, max_value=2**63 - 1, help_text=help_text)


class PatientFilter(df.FilterSet):
    account_number = df.CharFilter(help_text="Exact account number.")
    last_name = df.CharFilter(lookup_expr="iexact", help_text="Last name, case-insensitive.")
    has_available_credit = StrictBooleanFilter(method="_has_available", help_text="Patients with available credits.")
    has_locked_credit = StrictBooleanFilter(method="_has_locked", help_text="Patients with locked credits.")

    class Meta:
        model = Patient
        fields = ["account_number", "last_name"]

    def _has_available(self, qs, name, value):
        return qs.filter(available_total__gt=0) if value else qs.filter(available_total=0)

    def _has_locked(self, qs, name, value):
        return qs.filter(locked_total__gt=0) if value else qs.filter(locked_total=0)


class PayerFilter(df.FilterSet):
    payer_type = df.ChoiceFilter(choices=Payer.Type.choices)

    class Meta:
        model = Payer
        fields = ["payer_type"]


class EncounterFilter(df.FilterSet):
    patient = ids("Encounters of this patient.")
    date_from = df.DateFilter(field_name="date_of_service", lookup_expr="gte", help_text="Date of service on or after.")
    date_to = df.DateFilter(field_name="date_of_service", lookup_expr="lte", help_text="Date of service on or before.")
    has_balance = StrictBooleanFilter(method="_has_balance",
                                      help_text="Only encounters with (or without) a PR balance.")

    class Meta:
        model = Encounter
        fields = ["patient"]

    def _has_balance(self, qs, name, value):
        return qs.filter(bal__gt=0) if value else qs.filter(bal__lte=0)


class ClaimFilter(df.FilterSet):
    state = df.ChoiceFilter(choices=Claim.State.choices)
    encounter = ids("Claims of this encounter.")
    patient = ids("Claims of this patient.", field_name="encounter__patient_id")
    payer = ids("Claims to this payer.")
    claim_number = df.CharFilter(help_text="Exact claim number (CLP01).")

    class Meta:
        model = Claim
        fields = ["state", "encounter", "payer", "claim_number"]


class PaymentFilter(df.FilterSet):
    patient = ids("Payments of this patient.")
    encounter = ids("Payments made toward this encounter.")
    channel = df.ChoiceFilter(choices=Payment.Channel.choices)

    class Meta:
        model = Payment
        fields = ["patient", "encounter", "channel"]


class CreditFilter(df.FilterSet):
    state = df.MultipleChoiceFilter(choices=Credit.State.choices,
                                    help_text="One or more states (repeat the parameter).")
    source = df.MultipleChoiceFilter(choices=Credit.Source.choices)
    patient = ids("Credits of this patient.")
    locked_encounter = ids("Credits locked to this date of service.")
    origin_encounter = ids("Credits that came from this date of service.")
    created_from = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte", help_text="Created at or after.")
    created_to = UtcDateTimeFilter(field_name="created_at", lookup_expr="lte", help_text="Created at or before.")

    class Meta:
        model = Credit
        fields = ["state", "source", "patient", "locked_encounter", "origin_encounter"]


class RefundFilter(df.FilterSet):
    state = df.ChoiceFilter(choices=Refund.State.choices)
    method = df.ChoiceFilter(choices=Refund.Method.choices)
    patient = ids("Refunds of this patient.")
    credit = ids("Refunds of this credit.")

    class Meta:
        model = Refund
        fields = ["state", "method", "patient", "credit"]


class RemittanceFileFilter(df.FilterSet):
    status = df.ChoiceFilter(choices=RemittanceFile.Status.choices)

    class Meta:
        model = RemittanceFile
        fields = ["status"]


class RemittanceClaimFilter(df.FilterSet):
    state = df.ChoiceFilter(choices=RemittanceClaim.State.choices,
                            help_text="`unmatched` is the queue of claims that matched nothing.")
    waiting = StrictBooleanFilter(method="_waiting", help_text="Claims waiting for staff (unmatched, held reversal, "
                                                            "refused by a rule).")
    claim_number = df.CharFilter(help_text="Exact CLP01.")

    class Meta:
        model = RemittanceClaim
        fields = ["state", "claim_number"]

    def _waiting(self, qs, name, value):
        return qs.filter(state__in=RemittanceClaim.WAITING) if value else qs.exclude(state__in=RemittanceClaim.WAITING)


class NightlyRunFilter(df.FilterSet):
    status = df.ChoiceFilter(choices=NightlyRun.Status.choices)
    dry_run = StrictBooleanFilter()

    class Meta:
        model = NightlyRun
        fields = ["status", "dry_run"]
