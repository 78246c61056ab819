"""The demo's patient portal (seed_demo, issue 13): three patients of Riverside with portal logins
(password "demo", set directly like the staff logins) and one paper statement to pay as a guest.
Everything that moves money goes through the services, as on the pages.

* Olivia Ortiz (example O): $30 available from an overpaid copay, $45 owed for a later visit;
  excluded from the nightly application, so the credit waits for her to use it on the pay page.
* Nora Quinn: a $50 overpayment after a corrected remittance; its adjudication case has its
  overpayment notice sent, waiting for her answer (refund or keep).
* Rafael Reed: bought $200 of credits through the portal; asked for $25 back (issued at once) and
  then $90 (over the practice's $100 threshold with the first: waits for a manager).
* Grace Hill (no login): a paper statement of $85 owed; its guest-pay code and her date of birth
  are printed with the logins.
"""

from dataclasses import dataclass
from datetime import date

from django.contrib.auth import get_user_model
from django.test.utils import override_settings

from adjudication import scan as adjudication_scan
from adjudication.models import Case
from adjudication.services import notices as notice_services
from credits import services as credit_services
from ledger import services as ledger_services
from ledger.models import Patient, Payer, Practice
from portal.models import Statement
from portal.services import portal_invite, statement_issue

PASSWORD = "demo"
PORTAL_PATH = "/portal/"
ACCOUNTS = {  # key: (first, last, date of birth, account number)
    "credit": ("Olivia", "Ortiz", date(1982, 3, 14), "RFM-9001"),
    "notice": ("Nora", "Quinn", date(1990, 11, 2), "RFM-9002"),
    "refund": ("Rafael", "Reed", date(1975, 6, 23), "RFM-9003"),
    "guest": ("Grace", "Hill", date(1968, 9, 30), "RFM-9004"),
}
LOGINS = ("credit", "notice", "refund")
SHOWS = {
    "credit": "owes $45.00 for a visit, $30.00 credit available (pay with credits: $15.00 charged)",
    "notice": "an overpayment notice of $50.00 waiting for an answer (refund or keep)",
    "refund": "bought $200.00 of credits; refunds: $25.00 issued, $90.00 waiting for a manager",
}
PATIENTS = len(ACCOUNTS)  # seed_demo leaves room for them in Riverside's 50 patients
OV = ("Office visit, established patient (99213)", "180.00")


def email_of(key: str) -> str:
    first, last, _, _ = ACCOUNTS[key]
    return f"{first}.{last}@example.com".lower()


def portal(demo, riverside: Practice, u) -> dict:
    """Build the portal's demo patients (see the module); returns {key: Patient}."""
    b = u["billing"]
    bcbs = Payer.objects.get(practice=riverside, payer_identifier="84980")
    out = {}
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):  # no mail from a seed
        for key, (first, last, dob, account) in ACCOUNTS.items():
            out[key] = ledger_services.patient_create(
                practice_id=riverside.pk, account_number=account, first_name=first, last_name=last,
                date_of_birth=dob, email=email_of(key), member_id=f"M7000{account[-4:]}", actor=b,
                reason="Demo data (portal)", exclude_from_auto_apply=key == "credit", **demo.address(riverside))
            if key in LOGINS:
                user = portal_invite(patient_id=out[key].pk, actor=b, reason="Demo data").user
                user.set_password(PASSWORD)
                user.save(update_fields=["password"])
                out[key] = Patient.objects.select_related("user").get(pk=out[key].pk)

        # Example O: a $75 copay at the desk, the payer decided $45: $30 available; then $45 owed.
        pt = out["credit"]
        enc, claim = demo.visit(pt, 60, bcbs, b, estimated_pr="75.00", visit=OV)
        demo.pay(pt, "75.00", "card_reader", b, encounter=enc)
        demo.remit(claim, b, pr="45.00", paid="99.00", adjust="36.00")
        credit_services.credits_apply(patient_id=pt.pk, actor=b, respect_settings=False,
                                      reason="Copay applied to the visit's balance")
        _, claim = demo.visit(pt, 21, bcbs, b, visit=OV)
        demo.remit(claim, b, pr="45.00", paid="99.00", adjust="36.00")

        # An overpayment after a corrected remittance: the scan opens its case, the notice goes out.
        pt = out["notice"]
        enc, claim = demo.visit(pt, 75, bcbs, b, visit=("Office visit, new patient (99203)", "240.00"))
        demo.remit(claim, b, pr="120.00", paid="96.00", adjust="24.00")
        demo.pay(pt, "120.00", "card_reader", b, encounter=enc)
        demo.remit(claim, b, pr="70.00", paid="50.00", adjust="0.00",
                   reason="Corrected remittance from Blue Cross Blue Shield of Texas")

        # Credits bought through the portal by the patient, and two refunds he asked for there.
        pt = out["refund"]
        bought = credit_services.credit_purchase(patient_id=pt.pk, amount="200.00", channel="portal",
                                                 card_token="tok_visa", actor=pt.user, reason="Credits purchased")
        credit = bought.credits[0]
        for amount in ("25.00", "90.00"):
            credit_services.refund_request(credit_id=credit.pk, amount=amount, actor=pt.user,
                                           reason="Asked from the patient portal")

        # A paper statement: $85 owed after the payer's decision.
        pt = out["guest"]
        _, claim = demo.visit(pt, 40, bcbs, b, visit=OV)
        demo.remit(claim, b, pr="85.00", paid="59.00", adjust="36.00")
        statement_issue(patient_id=pt.pk, actor=b, reason="Monthly statement (demo data)")

        adjudication_scan.scan_practice(practice_id=riverside.pk, reason="Nightly scan (demo data: portal)")
        case = Case.objects.filter(practice=riverside, patient=out["notice"], kind=Case.Kind.PATIENT_CREDIT).open() \
            .order_by("pk").first()
        notice_services.case_send_notice(case=case, actor=b, reason="Overpayment notice")
    return out


@dataclass
class Row:
    login: str
    password: str
    shows: str


def logins() -> tuple[list[Row], str]:
    """The portal logins to print, and the guest-pay line ("" before the demo is loaded)."""
    User = get_user_model()
    rows = [Row(email_of(key), PASSWORD, SHOWS[key]) for key in LOGINS
            if User.objects.filter(username=email_of(key)).exists()]
    first, last, dob, _ = ACCOUNTS["guest"]
    st = Statement.objects.filter(patient__email=email_of("guest")).order_by("-pk").first()
    guest = "" if st is None else (f"guest pay: statement code {st.display_code}, date of birth {dob:%m/%d/%Y} "
                                   f"({first} {last}, ${st.due_now:,.2f} owed)")
    return rows, guest


def login_lines(site: str) -> list[str]:
    """What seed_demo prints under the staff logins (nothing before the demo is loaded)."""
    rows, guest = logins()
    if not rows:
        return []
    width = max(len(row.login) for row in rows)
    return ([f"\nOpen the patient portal, {site}{PORTAL_PATH}, and sign in as:\n"]
            + [f"  {row.login.ljust(width)}  {row.password}  {row.shows}" for row in rows]
            + ([f"  {guest}"] if guest else []))
