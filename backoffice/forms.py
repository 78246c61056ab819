"""Forms of the admin back-office pages (backoffice/views/patient.py). They only collect and check
input; every write is a service call made by the view, with the acting user and a reason. A
service's refusal (`SettleError`) is put back on the form by `add_service_error`: on the field
the error names when the form has it, otherwise above the form."""

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from credits.models import Credit, Refund, WriteOff
from ledger import dates
from ledger.amounts import AmountError, check_amount
from ledger.errors import InvalidInput
from ledger.models import Payment, Practice
from ledger.money import ZERO


def reason_field(label="Reason", *, required=True, initial=None, help_text="Kept in the history with your name."):
    return forms.CharField(label=label, required=required, initial=initial, max_length=2000, help_text=help_text,
                           widget=forms.Textarea(attrs={"rows": 2, "cols": 70}))


def money_input(**attrs):
    return forms.TextInput(attrs={"class": "settle-money", "inputmode": "decimal", "autocomplete": "off",
                                  "size": 10, **attrs})


class MoneyFormField(forms.Field):
    """Money typed by staff, read by the one money parser (ledger/amounts.py): ASCII digits, at most two
    decimals, no exponent, "+", spaces or separators, within the money columns' range (Django's DecimalField
    reads "１００", "1_000" or "5e-1" through Python's Decimal()). A minus sign only with `negative=True`.
    `min_value` / `max_value` may be changed after the form is built (e.g. to a credit's amount on hand)."""

    default_error_messages = {
        "min_value": "The amount must be at least %(limit)s.",
        "max_value": "The amount must be at most %(limit)s.",
    }

    def __init__(self, *, min_value=None, max_value=None, negative=False, max_digits=None, decimal_places=None,
                 **kwargs):  # max_digits / decimal_places: what a model DecimalField passes; the parser's range rules
        kwargs.setdefault("widget", money_input())
        super().__init__(**kwargs)
        self.min_value, self.max_value, self.negative = min_value, max_value, negative

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return check_amount(value, negative=self.negative)
        except AmountError as exc:
            raise ValidationError(exc.reason, code="invalid") from None

    def validate(self, value):
        super().validate(value)
        if value is None:
            return
        if self.min_value is not None and value < self.min_value:
            raise ValidationError(self.error_messages["min_value"], code="min_value",
                                  params={"limit": self.min_value})
        if self.max_value is not None and value > self.max_value:
            raise ValidationError(self.error_messages["max_value"], code="max_value",
                                  params={"limit": self.max_value})


class IsoDateFormField(forms.DateField):
    """A date typed as YYYY-MM-DD in ASCII digits (Django's DateField also reads "２０２６-..." and other
    formats through strptime), checked by ledger/dates.py: `kind="service"` a date of service (1900-01-01 to
    today + 2 years), `kind="birth"` a date of birth (1900-01-01 to today), None any calendar date."""

    CHECKS = {"service": dates.service_date, "birth": dates.birth_date, None: dates.iso_date}

    def __init__(self, *, kind=None, input_formats=None, **kwargs):
        kwargs.setdefault("help_text", "YYYY-MM-DD")
        super().__init__(**kwargs)
        self.check = self.CHECKS[kind]

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, str):
            try:
                return self.check(value, field="date")
            except InvalidInput as exc:
                raise ValidationError(exc.message.removeprefix("date: "), code="invalid") from None
        return super().to_python(value)

    def validate(self, value):
        super().validate(value)
        if value is not None:
            try:
                self.check(value, field="date")
            except InvalidInput as exc:
                raise ValidationError(exc.message.removeprefix("date: "), code="invalid") from None


def add_service_error(form, exc, *, fields: dict | None = None) -> None:
    """Show a service's refusal on `form`: on the form field that `exc.field` names (directly or
    through `fields`, a map from service argument names to form field names), else on top."""
    name = (fields or {}).get(exc.field, exc.field)
    if name and name in form.fields:
        form.add_error(name, exc.message)
    else:
        form.add_error(None, exc.message)


class PracticeChoiceMixin:
    """A `practice` choice limited to the user's practices, hidden when there is only one."""

    def setup_practice(self, practice_ids):
        field = self.fields["practice"]
        field.queryset = Practice.objects.filter(pk__in=practice_ids).order_by("name")
        if len(practice_ids) == 1:
            field.initial = practice_ids[0]
            field.widget = forms.HiddenInput()


# --- payments (rule 7) --------------------------------------------------------------------------------

class PaymentForm(forms.Form):
    """The payment screen. `encounters` are the patient's payable dates of service with a
    balance; `credits` the patient's credits on hand (those locked to another DoS are shown but
    cannot be used). A `credit_<id>` field per credit holds the amount to use."""

    CHANNELS = [(Payment.Channel.CARD_READER, "Card reader"), (Payment.Channel.CASH, "Cash"),
                (Payment.Channel.CHECK, "Check"), (Payment.Channel.EXTERNAL, "Other")]

    dos = forms.TypedMultipleChoiceField(label="Dates of service to pay", coerce=int, required=False,
                                         widget=forms.CheckboxSelectMultiple)
    apply_credits = forms.BooleanField(label="Apply patient credits", required=False)
    amount = MoneyFormField(label="Amount to charge", required=False, min_value=ZERO,
                            help_text="Filled in with what is owed less the credits used. A different amount "
                                      "without credits is recorded as a payment: it pays open balances, oldest "
                                      "first, and anything beyond becomes an available credit.")
    hold_for = forms.TypedChoiceField(label="Or hold for a DoS waiting on the payer", coerce=int, required=False,
                                      empty_value=None,
                                      help_text="With no date of service above: the payment is held as a credit "
                                                "locked to this DoS until its PR is known (DOMAIN rule 3).")
    channel = forms.ChoiceField(label="Paid by", choices=CHANNELS, widget=forms.RadioSelect,
                                initial=Payment.Channel.CARD_READER)
    card_token = forms.CharField(label="Card token from the reader", required=False, initial="tok_visa",
                                 max_length=100,
                                 help_text="What the card reader returns for the card (sandbox: tok_visa approves, "
                                           "tok_decline declines).")
    processor_reference = forms.CharField(label="or terminal reference", required=False, max_length=100,
                                          help_text="When the terminal already charged the card, its reference.")
    check_number = forms.CharField(label="Check number", required=False, max_length=40)
    reason = reason_field("Note", initial="Payment at the front desk")

    def __init__(self, *args, encounters, credits, usable_ids, pending, **kwargs):
        super().__init__(*args, **kwargs)
        self.encounters, self.credits, self.usable_ids = encounters, credits, set(usable_ids)
        self.fields["dos"].choices = [(e.pk, f"{e.date_of_service:%m/%d/%Y} · balance {e.bal}") for e in encounters]
        self.fields["hold_for"].choices = [("", "—")] + [(e.pk, f"{e.date_of_service:%m/%d/%Y} (claim waiting)")
                                                         for e in pending]
        for c in credits:
            self.fields[f"credit_{c.pk}"] = MoneyFormField(
                label=f"Credit #{c.pk}", required=False, min_value=ZERO, max_value=c.on_hand,
                widget=money_input(**({"disabled": True} if c.pk not in self.usable_ids else {})))

    def credit_rows(self):
        """(credit, bound field, usable) for the breakdown table."""
        return [(c, self[f"credit_{c.pk}"], c.pk in self.usable_ids) for c in self.credits]

    def chosen_credits(self) -> dict[int, Decimal]:
        if not self.cleaned_data.get("apply_credits"):
            return {}
        out = {}
        for c in self.credits:
            value = self.cleaned_data.get(f"credit_{c.pk}")
            if value:
                if c.pk not in self.usable_ids:
                    raise ValidationError(f"Credit #{c.pk} is locked to another date of service; it cannot pay "
                                          "the dates chosen.")
                out[c.pk] = value
        return out

    def owed(self) -> Decimal:
        chosen = set(self.cleaned_data.get("dos") or [])
        return sum((e.bal for e in self.encounters if e.pk in chosen), ZERO)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            data["credits"] = self.chosen_credits()
        except ValidationError as exc:
            raise ValidationError({"apply_credits": exc.messages}) from None
        used = sum(data["credits"].values(), ZERO)
        owed = self.owed()
        if data["credits"] and not data.get("dos"):
            self.add_error("dos", "Choose the dates of service the credits pay.")
            return data
        if used > owed:
            self.add_error("apply_credits", f"The credits chosen ({used}) are more than what is owed ({owed}).")
            return data
        rest = owed - used
        amount = data.get("amount")
        if amount is None:
            amount = data["amount"] = rest
        if data["credits"] and amount != rest:
            self.add_error("amount", f"With credits applied, only the rest is charged: {rest}. To take a different "
                                     "amount, clear the credits.")
        if not data.get("dos") and not amount:
            self.add_error("amount", "Enter the amount paid, or choose dates of service to pay.")
        if amount and data.get("channel") == Payment.Channel.CARD_READER and not (
                data.get("card_token", "").strip() or data.get("processor_reference", "").strip()):
            self.add_error("card_token", "Swipe the card (token) or enter the terminal's reference.")
        data["rest"], data["used"], data["owed"] = rest, used, owed
        return data


# --- credits: add, move, remove, refund, unlock ----------------------------------------------------------

def dos_choices(encounters, *, empty=None):
    out = [("", empty)] if empty else []
    return out + [(e.pk, f"{e.date_of_service:%m/%d/%Y}" + (f" · {e.description}" if e.description else ""))
                  for e in encounters]


class CreditAddForm(forms.Form):
    amount = MoneyFormField(label="Amount", min_value=Decimal("0.01"))
    encounter = forms.TypedChoiceField(label="Lock to date of service", coerce=int, required=False, empty_value=None,
                                       help_text="Leave empty for a flexible (available) credit.")
    note = reason_field("Note", help_text="Why the credit is added, e.g. 'carried over from the old system'. "
                                          "Kept on the credit and in the history.")

    def __init__(self, *args, encounters, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["encounter"].choices = dos_choices(encounters, empty="— flexible (available) —")


class CreditMoveForm(forms.Form):
    POOL = 0
    target = forms.TypedChoiceField(label="Move to", coerce=int)
    reason = reason_field()

    def __init__(self, *args, encounters, credit, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [] if credit.state == Credit.State.AVAILABLE else [(self.POOL, "The flexible pool (available)")]
        choices += [(e.pk, f"Locked to DoS {e.date_of_service:%m/%d/%Y}") for e in encounters
                    if e.pk != credit.locked_encounter_id]
        self.fields["target"].choices = choices


class CreditRemoveForm(forms.Form):
    amount = MoneyFormField(label="Amount to remove", min_value=Decimal("0.01"))
    reason = reason_field(help_text="E.g. 'refunded outside the system, check 1042', or 'turned over as unclaimed "
                                    "property'. Kept in the history with your name.")

    def __init__(self, *args, credit, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].initial = credit.on_hand
        self.fields["amount"].max_value = credit.on_hand


class RefundForm(forms.Form):
    amount = MoneyFormField(label="Amount to refund", min_value=Decimal("0.01"))
    method = forms.ChoiceField(label="Refund", widget=forms.RadioSelect)
    reference = forms.CharField(label="Check number / ACH trace", required=False, max_length=100,
                                help_text="For a check or ACH refund paid out now. Leave empty to issue it later "
                                          "(a refund that needs approval is issued after it).")
    reason = reason_field()

    def __init__(self, *args, credit, options, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].initial = credit.on_hand
        choices = []
        if options["system"]:
            choices.append((Refund.Method.ORIGINAL_PAYMENT,
                            f"Back to the original payment (up to {options['system_limit']})"))
        choices += [(Refund.Method.CHECK, "By check"), (Refund.Method.ACH, "By ACH transfer")]
        self.fields["method"].choices = choices
        self.fields["method"].initial = choices[0][0]


class RefundIssueForm(forms.Form):
    reference = forms.CharField(label="Check number / ACH trace", required=False, max_length=100)

    def __init__(self, *args, refund, **kwargs):
        super().__init__(*args, **kwargs)
        if refund.method == Refund.Method.ORIGINAL_PAYMENT:
            self.fields["reference"].widget = forms.HiddenInput()
        else:
            self.fields["reference"].required = True


class RefundDecisionForm(forms.Form):
    note = reason_field("Note", required=False, help_text="Required to reject. Kept in the history with your name.")


class WriteOffForm(forms.Form):
    amount = MoneyFormField(label="Amount to write off", min_value=Decimal("0.01"))
    reason_code = forms.ChoiceField(label="Reason code", choices=WriteOff.ReasonCode.choices,
                                    initial=WriteOff.ReasonCode.SMALL_BALANCE)
    note = reason_field("Note")

    def __init__(self, *args, encounter, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].initial = encounter.balance


class ReasonOnlyForm(forms.Form):
    reason = reason_field()


# --- files: credit CSV import, 835 upload ----------------------------------------------------------------

class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class RemittanceUploadForm(PracticeChoiceMixin, forms.Form):
    practice = forms.ModelChoiceField(queryset=Practice.objects.none())
    files = MultipleFileField(label="835 files", help_text="One or more X12 835 remittance files. Each is read, "
                                                           "stored and posted; the same file twice posts nothing.")

    def __init__(self, *args, practice_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup_practice(practice_ids)


class CreditImportForm(PracticeChoiceMixin, forms.Form):
    practice = forms.ModelChoiceField(queryset=Practice.objects.none())
    file = forms.FileField(label="CSV file", help_text="Columns: account_number, amount, note, and optionally "
                                                       "date_of_service (YYYY-MM-DD: the credit is locked to that "
                                                       "DoS). Every line is checked first and every problem listed; "
                                                       "a file with any problem imports nothing.")
    reason = reason_field(initial="Credits imported from CSV")

    def __init__(self, *args, practice_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup_practice(practice_ids)


# --- remittances: the unmatched queue, the nightly run ---------------------------------------------------

class RemittanceMatchForm(forms.Form):
    claim = forms.ModelChoiceField(label="Claim it belongs to", queryset=None)
    reason = reason_field()
    confirm_mismatch = forms.BooleanField(
        label="Post it even though it differs", required=False,
        help_text="Needed when the claim's payer, patient name or date of service differs from the remittance "
                  "claim's: you confirm you checked it is the right claim (kept with your name and reason).")

    def __init__(self, *args, claims, widget=None, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["claim"]
        if widget is not None:  # set before the queryset: that hands the widget its choices
            widget.is_required = field.required
            field.widget = widget
        field.queryset = claims


class RemittanceDismissForm(forms.Form):
    reason = reason_field(help_text="Why this claim is not ours; kept with your name and the time. Nothing is posted.")


class NightlyForm(PracticeChoiceMixin, forms.Form):
    practice = forms.ModelChoiceField(queryset=Practice.objects.none())

    def __init__(self, *args, practice_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup_practice(practice_ids)


class NightlyRunNowForm(NightlyForm):
    reason = reason_field(initial="Run now from the admin")

