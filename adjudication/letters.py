"""The letters adjudication sends, as PDF bytes (fpdf2, pure Python): the overpayment notice to a
patient (DOMAIN rule 18) and the unclaimed-property due-diligence letter (rule 17, example L).

Pure rendering: the services (adjudication/services/notices.py, unclaimed.py) read the rows under
their locks and pass plain values in; nothing here touches the database. The built-in PDF fonts
know Latin-1 only, so other characters are folded to their closest Latin-1 letter ("Łukasz" ->
"Lukasz") or shown as "?"; the rows keep the real names.

`COMPRESS` (module setting) deflates the page streams, as fpdf2 does by default; the tests turn it
off to read the letter's text in the PDF bytes."""

import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from fpdf import FPDF

COMPRESS = True

STATE_NAMES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho",
    "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina",
    "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas",
    "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington", "WV": "West Virginia",
    "WI": "Wisconsin", "WY": "Wyoming", "DC": "the District of Columbia", "AS": "American Samoa", "GU": "Guam",
    "MP": "the Northern Mariana Islands", "PR": "Puerto Rico", "VI": "the U.S. Virgin Islands",
}


def state_name(code: str) -> str:
    return STATE_NAMES.get(code, code)


@dataclass(frozen=True)
class Addressee:
    """Whom a letter goes to: the patient's name and last known address (Patient.address_*)."""

    name: str
    lines: tuple = ()

    @classmethod
    def of(cls, patient) -> "Addressee":
        city_line = " ".join(p for p in (", ".join(p for p in (patient.city, patient.us_state) if p),
                                         patient.postal_code) if p)
        lines = tuple(p for p in (patient.address_line1, patient.address_line2, city_line) if p)
        return cls(name=f"{patient.first_name} {patient.last_name}".strip(), lines=lines)


def long_date(d: date) -> str:
    return f"{d:%B} {d.day}, {d.year}"


def dollars(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _latin1(text: str) -> str:
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", str(text)) if not unicodedata.combining(ch))
    folded = folded.replace("\u0141", "L").replace("\u0142", "l").replace("\u2019", "'").replace("\u2013", "-")
    return folded.encode("latin-1", "replace").decode("latin-1")


class _Letter:
    """One page of a business letter: the practice's heading, the date, the addressee, the body."""

    def __init__(self, *, practice_name: str, practice_lines=(), on: date, to: Addressee, subject: str):
        self.pdf = FPDF(format="Letter", unit="mm")
        self.pdf.set_compression(COMPRESS)
        self.pdf.set_title(_latin1(subject))
        self.pdf.set_author(_latin1(practice_name))
        self.pdf.set_margins(25, 20, 25)
        self.pdf.set_auto_page_break(True, margin=20)
        self.pdf.add_page()
        self.pdf.set_font("Helvetica", "B", 14)
        self.line(practice_name, h=7)
        self.pdf.set_font("Helvetica", "", 10)
        for line in practice_lines:
            self.line(line)
        self.pdf.ln(8)
        self.line(long_date(on))
        self.pdf.ln(6)
        self.line(to.name)
        for line in to.lines:
            self.line(line)
        self.pdf.ln(8)
        self.pdf.set_font("Helvetica", "B", 11)
        self.line(subject, h=6)
        self.pdf.ln(2)
        self.pdf.set_font("Helvetica", "", 11)

    def line(self, text: str, *, h: float = 5) -> None:
        self.pdf.multi_cell(0, h, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    def para(self, text: str) -> None:
        self.line(text, h=5.5)
        self.pdf.ln(3)

    def bold(self, text: str) -> None:
        self.pdf.set_font("Helvetica", "B", 11)
        self.para(text)
        self.pdf.set_font("Helvetica", "", 11)

    def bytes(self) -> bytes:
        return bytes(self.pdf.output())


def notice_pdf(*, practice_name: str, to: Addressee, on: date, amount: Decimal, why: str, phone_hint: str = "",
               deadline: date | None, reminder: bool = False) -> bytes:
    """The overpayment notice (rule 18): the amount, why it is there, the choice (a refund or keep
    it as a credit for future visits), how to answer, and the day the refund is due if the patient
    does not answer (the case's clock)."""
    subject = ("Reminder: " if reminder else "") + "You have a credit balance with us"
    letter = _Letter(practice_name=practice_name, on=on, to=to, subject=subject)
    letter.para(f"Dear {to.name},")
    letter.para(f"Our records show a credit balance of {dollars(amount)} on your account. {why}")
    letter.bold("You may choose what we do with it:")
    letter.para(f"1. Refund: we return the {dollars(amount)} to you (to the card or account you paid with, "
                "otherwise by check to the address above).")
    letter.para("2. Keep it as a credit: we keep the money on your account and use it for your future "
                "visits; each time it is used, it appears on your statement.")
    letter.para(f"To tell us your choice, call our office{phone_hint}. You will also be able to answer in the "
                "patient portal.")
    if deadline is not None:
        letter.para(f"If we do not hear from you, we will refund the credit by {long_date(deadline)}.")
    letter.para("If you believe this balance is not yours, or you have questions about it, please call us.")
    letter.para("Sincerely,")
    letter.line(f"The billing office, {practice_name}")
    return letter.bytes()


def due_diligence_pdf(*, practice_name: str, to: Addressee, on: date, amount: Decimal, last_activity_on: date,
                      state: str, respond_by: date, report_due_on: date) -> bytes:
    """The unclaimed-property due-diligence letter (rule 17): the holder must try to reach the owner
    before it reports the property to the state; the owner's answer keeps the money with them."""
    name = state_name(state)
    letter = _Letter(practice_name=practice_name, on=on, to=to,
                     subject="Important: money we hold for you may be turned over to the state")
    letter.para(f"Dear {to.name},")
    letter.para(f"We hold a credit balance of {dollars(amount)} for you. There has been no activity on it since "
                f"{long_date(last_activity_on)}. Under the unclaimed property law of {name}, property with no "
                "owner activity for that long is presumed abandoned, and we must report it and turn it over to "
                f"the state by {long_date(report_due_on)}.")
    letter.bold(f"To keep this money, contact us by {long_date(respond_by)}.")
    letter.para("Call our office to ask for a refund, or to keep the credit for your future visits. Either "
                "answer keeps it from being turned over.")
    letter.para(f"If we do not hear from you, we will send the {dollars(amount)} to the unclaimed property "
                f"program of {name}, from which you can still claim it later.")
    letter.para("Sincerely,")
    letter.line(f"The billing office, {practice_name}")
    return letter.bytes()
