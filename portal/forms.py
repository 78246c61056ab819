"""The portal's money forms (issue 13). They only read what the patient typed: every rule on the
amounts (no negative, zero or sub-cent amount, nothing beyond what is owed, refundable or on hand)
is the services' (credits.services, portal.services), whose refusals `add_service_error` puts on
the field they name. Card entry is the processor's (ledger.processors.CardProcessor.card_choices):
settle never sees a card number."""

from django import forms

from ledger.errors import SettleError
from ledger.processors import get_processor


def card_choices() -> list[tuple[str, str]]:
    return get_processor().card_choices()


def plain_message(exc: SettleError) -> str:
    """The service's message without its leading "field: " (the page shows it on that field)."""
    msg = exc.message
    prefix = f"{exc.field}: " if exc.field else ""
    if prefix and msg.startswith(prefix):
        msg = msg[len(prefix):]
    return msg[:1].upper() + msg[1:]


def add_service_error(form: forms.Form, exc: SettleError, field_map: dict | None = None) -> None:
    """The service's refusal on the form field it names (`field_map` maps a service's field name
    to the form's); anything else is an error of the whole form."""
    field = (field_map or {}).get(exc.field, exc.field)
    form.add_error(field if field in form.fields else None, plain_message(exc))


class PortalForm(forms.Form):
    """Errors tied to their fields for screen readers: each input with an error names its error
    list (id `<input id>-error`) in aria-describedby, and is marked aria-invalid."""

    form_key = forms.CharField(widget=forms.HiddenInput, required=False)

    def add_error(self, field, error):
        super().add_error(field, error)
        if field in self.fields and field in self.errors:
            attrs = self.fields[field].widget.attrs
            attrs["aria-invalid"] = "true"
            if f"id_{field}-error" not in attrs.get("aria-describedby", ""):
                helptext = f"id_{field}_helptext" if self.fields[field].help_text else ""
                attrs["aria-describedby"] = " ".join(x for x in (f"id_{field}-error", helptext) if x)


class CardField(forms.ChoiceField):
    widget = forms.RadioSelect

    def __init__(self, **kwargs):
        super().__init__(choices=card_choices, label="Card", **kwargs)


class AmountField(forms.CharField):
    """An amount as typed ("45", "45.00", "$1,045.00"); its checks are the service's."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 20)
        super().__init__(**kwargs)
        self.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off"})

    def to_python(self, value):
        return (super().to_python(value) or "").replace("$", "").replace(",", "").strip()


class BuyForm(PortalForm):
    amount = AmountField(label="Amount")
    visit = forms.ChoiceField(label="What the credit is for", required=False,
                              help_text="Flexible credits pay any visit; a credit for a visit is kept for that visit.")
    card_token = CardField()

    def __init__(self, *args, visits=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["visit"].choices = [("", "Flexible: any visit")] + [
            (str(e.pk), f"Visit on {e.date_of_service:%m/%d/%Y}") for e in visits]


class RefundForm(PortalForm):
    amount = AmountField(label="Amount to refund")
    reason = forms.CharField(label="Why?", max_length=500, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="In your own words; the practice sees it with your request.")


class NoticeForm(PortalForm):
    election = forms.ChoiceField(label="Your answer", widget=forms.RadioSelect, choices=[
        ("refund", "Send me the money back (a refund)"),
        ("keep", "Keep it as a credit for future visits"),
    ])
    reason = forms.CharField(label="Anything you want to tell the practice", required=False,
                             max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


class GuestOpenForm(PortalForm):
    code = forms.CharField(label="Statement code", max_length=20, help_text="The 8 letters and digits printed on "
                                                                            "your statement, like ABCD-2345.",
                           widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}))
    date_of_birth = forms.DateField(label="Patient's date of birth", input_formats=["%Y-%m-%d", "%m/%d/%Y"],
                                    help_text="Month, day and year, for example 05/17/1980.",
                                    widget=forms.DateInput(format="%Y-%m-%d",
                                                           attrs={"type": "date", "autocomplete": "bday"}))


class GuestPayForm(PortalForm):
    amount = AmountField(label="Amount to pay")
    card_token = CardField()
