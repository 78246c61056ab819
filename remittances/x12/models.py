"""What the 835 reader returns: plain dataclasses, money as ``Decimal``.

Element values are kept as written (no trimming), except the fixed-width ISA
identifiers, whose padding is stripped. Every object that comes from a segment
carries ``segment`` (1-based ordinal in the file) and ``position`` (byte
offset) so staff and error messages can point at the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from .errors import X12Warning
from .tokenizer import Delimiters

ZERO = Decimal(0)

#: CLP02 claim status codes (005010X221A1; 4010 has no 25).
CLAIM_STATUS = {
    "1": "processed as primary",
    "2": "processed as secondary",
    "3": "processed as tertiary",
    "4": "denied",
    "19": "processed as primary, forwarded to additional payer(s)",
    "20": "processed as secondary, forwarded to additional payer(s)",
    "21": "processed as tertiary, forwarded to additional payer(s)",
    "22": "reversal of previous payment",
    "23": "not our claim, forwarded to additional payer(s)",
    "25": "predetermination pricing only, no payment",
}

#: CAS01 claim adjustment group codes. CR exists in 004010 only.
ADJUSTMENT_GROUPS = {
    "CO": "contractual obligation",
    "PR": "patient responsibility",
    "OA": "other adjustment",
    "PI": "payer initiated reduction",
    "CR": "correction and reversal (004010 only)",
}


@dataclass(slots=True)
class Adjustment:
    """One CAS reason triplet."""

    group: str
    reason: str
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(slots=True)
class PLBAdjustment:
    """One PLB adjustment pair. ``amount`` is as written: it is subtracted from
    the claim payments to give the check amount (negative raises the check)."""

    code: str
    reference: str
    amount: Decimal
    provider_id: str = ""
    fiscal_period_date: date | None = None
    segment: int = 0
    position: int = 0


@dataclass(slots=True)
class Party:
    """A payer (N1*PR) or payee (N1*PE) loop."""

    entity: str
    name: str
    id_qualifier: str = ""
    id: str = ""
    address: list[str] = field(default_factory=list)
    city: str = ""
    state: str = ""
    postal_code: str = ""
    references: list[tuple[str, str]] = field(default_factory=list)
    segment: int = 0
    position: int = 0


@dataclass(slots=True)
class Person:
    """An NM1 name in a claim (QC patient, 74 corrected patient, IL insured,
    82 rendering provider, ...)."""

    entity: str
    entity_type: str
    last: str
    first: str = ""
    middle: str = ""
    suffix: str = ""
    id_qualifier: str = ""
    id: str = ""


@dataclass(slots=True)
class ServiceLine:
    """An SVC loop (2110)."""

    procedure: str  # the SVC01 composite as written
    qualifier: str  # SVC01-1, e.g. HC, AD, NU
    code: str  # SVC01-2
    modifiers: list[str]
    charge: Decimal
    paid: Decimal
    revenue_code: str = ""
    units: Decimal | None = None
    original_procedure: str = ""
    adjustments: list[Adjustment] = field(default_factory=list)
    dates: dict[str, str] = field(default_factory=dict)  # DTM qualifier -> raw CCYYMMDD
    service_date: date | None = None  # DTM*472, else DTM*150
    service_date_end: date | None = None  # DTM*151
    references: list[tuple[str, str]] = field(default_factory=list)
    amounts: dict[str, Decimal] = field(default_factory=dict)  # AMT qualifier -> amount
    remarks: list[str] = field(default_factory=list)  # LQ02
    segment: int = 0
    position: int = 0

    @property
    def adjustment_total(self) -> Decimal:
        return sum((a.amount for a in self.adjustments), ZERO)


@dataclass(slots=True, eq=False)
class Claim:
    """A CLP loop (2100) with its service lines."""

    claim_id: str  # CLP01, the practice's claim number (match key)
    status_code: str  # CLP02
    charge: Decimal  # CLP03
    paid: Decimal  # CLP04
    patient_responsibility: Decimal  # CLP05, empty -> 0
    filing_indicator: str = ""  # CLP06
    payer_claim_number: str = ""  # CLP07
    facility_code: str = ""  # CLP08
    frequency: str = ""  # CLP09
    header_number: str = ""  # LX01 of the enclosing 2000 loop ("" when there is none)
    patient: Person | None = None  # NM1*QC
    corrected_patient: Person | None = None  # NM1*74
    insured: Person | None = None  # NM1*IL
    rendering_provider: Person | None = None  # NM1*82
    other_names: list[Person] = field(default_factory=list)
    adjustments: list[Adjustment] = field(default_factory=list)  # claim-level CAS
    services: list[ServiceLine] = field(default_factory=list)
    dates: dict[str, str] = field(default_factory=dict)  # DTM qualifier -> raw CCYYMMDD
    statement_from: date | None = None  # DTM*232
    statement_to: date | None = None  # DTM*233
    received_date: date | None = None  # DTM*050
    references: list[tuple[str, str]] = field(default_factory=list)
    amounts: dict[str, Decimal] = field(default_factory=dict)
    quantities: dict[str, Decimal] = field(default_factory=dict)
    remarks: list[str] = field(default_factory=list)  # LQ found outside a service line
    warnings: list[X12Warning] = field(default_factory=list)
    segment: int = 0  # ordinal of the CLP segment in the file
    position: int = 0  # byte offset of the CLP segment
    transaction: Transaction835 | None = field(default=None, repr=False)

    @property
    def is_reversal(self) -> bool:
        return self.status_code == "22"

    @property
    def is_denied(self) -> bool:
        return self.status_code == "4"

    def all_adjustments(self) -> Iterator[Adjustment]:
        """Claim-level then service-level adjustments."""
        yield from self.adjustments
        for service in self.services:
            yield from service.adjustments

    @property
    def adjustment_total(self) -> Decimal:
        return sum((a.amount for a in self.all_adjustments()), ZERO)

    def adjustment_total_for(self, group: str) -> Decimal:
        return sum((a.amount for a in self.all_adjustments() if a.group == group), ZERO)


@dataclass(slots=True, eq=False)
class Transaction835:
    """One ST*835 ... SE transaction set: one payment (check or EFT)."""

    control_number: str  # ST02
    implementation: str = ""  # ST03 (5010) or GS08
    handling_code: str = ""  # BPR01
    total_paid: Decimal = ZERO  # BPR02
    credit_debit: str = ""  # BPR03: C credit, D debit
    payment_method: str = ""  # BPR04: ACH, CHK, NON, FWT, BOP
    payment_format: str = ""  # BPR05
    payment_date: date | None = None  # BPR16
    payment_date_raw: str = ""
    trace_type: str = ""  # TRN01
    trace_number: str = ""  # TRN02: check or EFT trace number
    trace_payer_id: str = ""  # TRN03
    trace_origin_supplemental: str = ""  # TRN04
    production_date: date | None = None  # DTM*405
    references: list[tuple[str, str]] = field(default_factory=list)  # header REF
    payer: Party | None = None
    payee: Party | None = None
    claims: list[Claim] = field(default_factory=list)  # empty when streamed without keeping claims
    plb: list[PLBAdjustment] = field(default_factory=list)
    claim_count: int = 0
    claims_charge_total: Decimal = ZERO  # sum of CLP03
    claims_paid_total: Decimal = ZERO  # sum of CLP04
    declared_segment_count: int | None = None  # SE01
    segment_count: int = 0  # counted ST..SE inclusive
    interchange_control_number: str | None = None
    group_control_number: str | None = None
    warnings: list[X12Warning] = field(default_factory=list)
    segment: int = 0
    position: int = 0

    @property
    def plb_total(self) -> Decimal:
        return sum((p.amount for p in self.plb), ZERO)

    @property
    def payer_name(self) -> str:
        return self.payer.name if self.payer else ""

    @property
    def signed_total_paid(self) -> Decimal:
        """BPR02 with the direction of BPR03: negative for a debit (D)."""
        return -self.total_paid if self.credit_debit == "D" else self.total_paid


@dataclass(slots=True, eq=False)
class Group:
    """A GS ... GE functional group."""

    functional_id: str | None  # GS01 (HP for 835)
    sender: str = ""
    receiver: str = ""
    date: date | None = None
    date_raw: str = ""
    time_raw: str = ""
    control_number: str | None = None  # GS06
    version: str = ""  # GS08
    transactions: list[Transaction835] = field(default_factory=list)
    transaction_set_count: int = 0  # every ST, 835 or not
    skipped_transactions: int = 0
    segment: int = 0
    position: int = 0


@dataclass(slots=True, eq=False)
class Interchange:
    """An ISA ... IEA interchange. A file without envelope gets one
    ``enveloped=False`` interchange (all ISA fields empty) holding one group."""

    sender_qualifier: str = ""
    sender_id: str = ""  # ISA06, padding stripped
    receiver_qualifier: str = ""
    receiver_id: str = ""  # ISA08, padding stripped
    date: date | None = None  # ISA09
    date_raw: str = ""
    time_raw: str = ""  # ISA10
    control_number: str | None = None  # ISA13
    version: str = ""  # ISA12
    usage_indicator: str = ""  # ISA15: P production, T test
    delimiters: Delimiters | None = None
    enveloped: bool = True
    groups: list[Group] = field(default_factory=list)
    segment: int = 0
    position: int = 0


@dataclass(slots=True, eq=False)
class Remittance835File:
    filename: str
    sha256: str
    size: int
    interchanges: list[Interchange] = field(default_factory=list)
    transactions: list[Transaction835] = field(default_factory=list)
    warnings: list[X12Warning] = field(default_factory=list)
    skipped_transactions: int = 0  # transaction sets other than 835
    enveloped: bool = True
    segment_count: int = 0

    @property
    def claim_count(self) -> int:
        return sum(t.claim_count for t in self.transactions)

    def iter_claims(self) -> Iterator[Claim]:
        for transaction in self.transactions:
            yield from transaction.claims

    @property
    def total_paid(self) -> Decimal:
        return sum((t.signed_total_paid for t in self.transactions), ZERO)
