"""Synthetic 005010X221A1 835 files with balanced amounts, for tests and
benchmarks.

``generate_835(claims=1000)`` writes 1000 random but valid, balanced claims
(deterministic for a given ``seed``). ``specs=[ClaimSpec(...)]`` adds claims
with chosen amounts; ``plb=[("WO", "REF1", "-25.00")]`` adds provider-level
adjustments. Every service line, claim and payment balances by construction:

    line:        charge - paid = CO + PR (on the line)
    claim:       CLP03 = sum of charges, CLP04 = sum of paid, CLP05 = sum of PR
    transaction: BPR02 = sum of CLP04 - sum of PLB amounts (BPR03 = D if negative)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

CENT = Decimal("0.01")
ZERO = Decimal(0)

_LAST = ["SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "LOPEZ", "WILSON"]
_FIRST = ["MARY", "JAMES", "LINDA", "ROBERT", "PATRICIA", "JOHN", "ELENA", "DAVID", "SUSAN", "AHMED"]
_PROCEDURES = ["99213", "99214", "99203", "36415", "80053", "85025", "93000", "71046", "97110", "90471"]


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _fmt(value: Decimal) -> str:
    return f"{value:.2f}"


@dataclass
class ClaimSpec:
    """One claim with chosen amounts. The contractual adjustment (CO 45 by
    default, ``contractual_reason``) takes up charge - paid - PR, so the claim
    always balances; it may be negative (e.g. for a reversal)."""

    claim_id: str
    status: str = "1"
    charge: Decimal | str = "100.00"
    paid: Decimal | str = "80.00"
    patient_responsibility: list[tuple[str, Decimal | str]] = field(default_factory=list)  # (reason, amount)
    other_adjustments: list[tuple[str, str, Decimal | str]] = field(default_factory=list)  # (group, reason, amount)
    contractual_reason: str = "45"
    payer_claim_number: str = ""
    patient_last: str = "DOE"
    patient_first: str = "JANE"
    member_id: str = "MEMBER001"
    procedure: str = "99213"
    service_date: date = date(2024, 1, 2)
    service_line: bool = True  # False: adjustments at claim level, no SVC


@dataclass
class _Line:
    procedure: str
    charge: Decimal
    paid: Decimal
    adjustments: list[tuple[str, str, Decimal]]
    service_date: date


@dataclass
class _Claim:
    claim_id: str
    status: str
    payer_claim_number: str
    patient: tuple[str, str, str]
    lines: list[_Line]
    claim_adjustments: list[tuple[str, str, Decimal]]
    charge: Decimal
    paid: Decimal
    statement: date


def _from_spec(spec: ClaimSpec, index: int) -> _Claim:
    charge = _money(spec.charge)
    paid = _money(spec.paid)
    adjustments = [("PR", reason, _money(amount)) for reason, amount in spec.patient_responsibility]
    adjustments += [(group, reason, _money(amount)) for group, reason, amount in spec.other_adjustments]
    rest = charge - paid - sum((a[2] for a in adjustments), ZERO)
    if rest:
        adjustments.insert(0, ("CO", spec.contractual_reason, rest))
    lines = []
    claim_adjustments = adjustments
    if spec.service_line:
        lines = [_Line(spec.procedure, charge, paid, adjustments, spec.service_date)]
        claim_adjustments = []
    return _Claim(
        claim_id=spec.claim_id,
        status=spec.status,
        payer_claim_number=spec.payer_claim_number or f"PCN{index:09d}",
        patient=(spec.patient_last, spec.patient_first, spec.member_id),
        lines=lines,
        claim_adjustments=claim_adjustments,
        charge=charge,
        paid=paid,
        statement=spec.service_date,
    )


def _random_claim(rng: random.Random, claim_id: str, index: int, base: date) -> _Claim:
    service_date = base - timedelta(days=rng.randrange(5, 90))
    roll = rng.random()
    status = "4" if roll < 0.05 else ("2" if roll < 0.10 else "1")
    lines = []
    for _ in range(rng.randint(1, 3)):
        charge = Decimal(rng.randrange(2000, 90000)) * CENT
        if status == "4":
            lines.append(_Line(rng.choice(_PROCEDURES), charge, ZERO, [("CO", "50", charge)], service_date))
            continue
        allowed = (charge * Decimal(rng.randrange(40, 91)) / 100).quantize(CENT)
        adjustments = [("CO", "45", charge - allowed)] if charge != allowed else []
        deductible = (allowed * Decimal(rng.choice([0, 0, 0, 10, 25])) / 100).quantize(CENT)
        coinsurance = ((allowed - deductible) * Decimal(rng.choice([0, 10, 20])) / 100).quantize(CENT)
        copay = Decimal(rng.choice([0, 0, 10, 20, 30])).quantize(CENT)
        copay = min(copay, allowed - deductible - coinsurance)
        for reason, amount in (("1", deductible), ("2", coinsurance), ("3", copay)):
            if amount:
                adjustments.append(("PR", reason, amount))
        paid = allowed - deductible - coinsurance - copay
        lines.append(_Line(rng.choice(_PROCEDURES), charge, paid, adjustments, service_date))
    return _Claim(
        claim_id=claim_id,
        status=status,
        payer_claim_number=f"PCN{index:09d}",
        patient=(rng.choice(_LAST), rng.choice(_FIRST), f"M{rng.randrange(10**8):08d}"),
        lines=lines,
        claim_adjustments=[],
        charge=sum((line.charge for line in lines), ZERO),
        paid=sum((line.paid for line in lines), ZERO),
        statement=service_date,
    )


def _cas_segments(adjustments: list[tuple[str, str, Decimal]]) -> list[list[str]]:
    """Group adjustments by group code into CAS segments of at most 6 triplets."""
    segments = []
    by_group: dict[str, list[tuple[str, Decimal]]] = {}
    for group, reason, amount in adjustments:
        by_group.setdefault(group, []).append((reason, amount))
    for group, items in by_group.items():
        for start in range(0, len(items), 6):
            elements = ["CAS", group]
            for reason, amount in items[start : start + 6]:
                elements += [reason, _fmt(amount), ""]
            while elements[-1] == "":
                elements.pop()
            segments.append(elements)
    return segments


def generate_835(
    *,
    claims: int = 0,
    seed: int = 0,
    claim_ids: list[str] | None = None,
    specs: list[ClaimSpec] | None = None,
    plb: list[tuple[str, str, Decimal | str]] | None = None,
    claims_per_transaction: int | None = None,
    payer_name: str = "SETTLE TEST PAYER",
    payer_id: str = "1999999999",
    payee_name: str = "SETTLE TEST CLINIC",
    payee_npi: str = "1234567893",
    interchange_control_number: int = 1,
    check_number: str | None = None,
    payment_date: date = date(2024, 1, 15),
    element_separator: str = "*",
    component_separator: str = ":",
    segment_terminator: str = "~",
    repetition_separator: str | None = None,
    line_break: str = "\n",
    bom: bool = False,
    envelope: bool = True,
) -> bytes:
    """Return a synthetic 005010X221A1 835 file.

    ``claims`` random claims (ids from ``claim_ids`` when given, else
    ``CLM<seed>-<n>``) follow the ``specs`` claims. ``claims_per_transaction``
    splits them into several ST/SE sets (one check each); PLB goes in the last.
    ``line_break`` is written after every segment terminator.
    """
    if claim_ids is not None:
        if claims and claims != len(claim_ids):
            raise ValueError("claims must equal len(claim_ids)")
        claims = len(claim_ids)
    rng = random.Random(seed)
    built = [_from_spec(spec, i) for i, spec in enumerate(specs or [], start=1)]
    offset = len(built)
    for n in range(claims):
        claim_id = claim_ids[n] if claim_ids is not None else f"CLM{seed}-{n + 1:07d}"
        built.append(_random_claim(rng, claim_id, offset + n + 1, payment_date))
    plb_items = [(code, ref, _money(amount)) for code, ref, amount in (plb or [])]

    per = claims_per_transaction or max(len(built), 1)
    chunks = [built[i : i + per] for i in range(0, len(built), per)] or [[]]

    E, C, T = element_separator, component_separator, segment_terminator
    if repetition_separator is None:  # ISA11: first of these not already a delimiter
        repetition_separator = next(c for c in "^{!`" if c not in (E, C, T))
    out: list[str] = []

    def seg(*elements: str) -> None:
        out.append(E.join(elements) + T + line_break)

    yymmdd = payment_date.strftime("%y%m%d")
    ccyymmdd = payment_date.strftime("%Y%m%d")
    control = f"{interchange_control_number:09d}"
    if envelope:
        seg(
            "ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SETTLEPAYER".ljust(15), "ZZ", "SETTLECLINIC".ljust(15),
            yymmdd, "1200", repetition_separator, "00501", control, "0", "T", C,
        )
        seg("GS", "HP", "SETTLEPAYER", "SETTLECLINIC", ccyymmdd, "1200", str(interchange_control_number), "X",
            "005010X221A1")
    for t_index, chunk in enumerate(chunks, start=1):
        st_at = len(out)
        st_control = f"{t_index:04d}"
        seg("ST", "835", st_control)  # ST03 is "not used" in the 835 TR3
        paid_total = sum((c.paid for c in chunk), ZERO)
        last = t_index == len(chunks)
        if last:
            paid_total -= sum((p[2] for p in plb_items), ZERO)
        flag = "D" if paid_total < 0 else "C"
        amount = _fmt(abs(paid_total))
        if paid_total:
            seg("BPR", "I", amount, flag, "CHK", "", "", "", "", "", "", "", "", "", "", "", ccyymmdd)
        else:
            seg("BPR", "H", amount, "C", "NON", "", "", "", "", "", "", "", "", "", "", "", ccyymmdd)
        trace = check_number or f"{seed}{interchange_control_number:04d}{t_index:05d}"
        if check_number and len(chunks) > 1:
            trace = f"{check_number}-{t_index}"
        seg("TRN", "1", trace, payer_id)
        seg("DTM", "405", ccyymmdd)
        seg("N1", "PR", payer_name)
        seg("N3", "PO BOX 1000")
        seg("N4", "SPRINGFIELD", "IL", "627010000")
        seg("PER", "BL", "EDI SUPPORT", "TE", "8005551212")
        seg("N1", "PE", payee_name, "XX", payee_npi)
        if chunk:
            seg("LX", "1")
        for claim in chunk:
            pr_total = sum(
                (a[2] for a in claim.claim_adjustments if a[0] == "PR"), ZERO
            ) + sum((a[2] for line in claim.lines for a in line.adjustments if a[0] == "PR"), ZERO)
            seg("CLP", claim.claim_id, claim.status, _fmt(claim.charge), _fmt(claim.paid), _fmt(pr_total), "12",
                claim.payer_claim_number, "11", "1")
            for elements in _cas_segments(claim.claim_adjustments):
                seg(*elements)
            last_name, first_name, member = claim.patient
            seg("NM1", "QC", "1", last_name, first_name, "", "", "", "MI", member)
            statement = claim.statement.strftime("%Y%m%d")
            seg("DTM", "232", statement)
            seg("DTM", "233", statement)
            for number, line in enumerate(claim.lines, start=1):
                seg("SVC", f"HC{C}{line.procedure}", _fmt(line.charge), _fmt(line.paid), "", "1")
                seg("DTM", "472", line.service_date.strftime("%Y%m%d"))
                for elements in _cas_segments(line.adjustments):
                    seg(*elements)
                seg("REF", "6R", f"{claim.claim_id}-{number}")
                allowed = line.charge - sum((a[2] for a in line.adjustments if a[0] == "CO"), ZERO)
                seg("AMT", "B6", _fmt(allowed))
        if last and plb_items:
            fiscal = f"{payment_date.year}1231"
            for start in range(0, len(plb_items), 6):
                elements = ["PLB", payee_npi, fiscal]
                for code, ref, value in plb_items[start : start + 6]:
                    elements += [f"{code}{C}{ref}" if ref else code, _fmt(value)]
                seg(*elements)
        seg("SE", str(len(out) - st_at + 1), st_control)
    if envelope:
        seg("GE", str(len(chunks)), str(interchange_control_number))
        seg("IEA", "1", control)
    text = "".join(out)
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
