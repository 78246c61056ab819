"""Balancing checks of an 835. A failed check is a warning, never a fix.

* service line: SVC02 - SVC03 == sum of the line's CAS amounts
* claim:        CLP03 - CLP04 == sum of claim-level CAS + sum of service-line CAS
                (a negative adjustment raises the payment)
* claim PR:     CLP05 == sum of CAS amounts in group PR (claim and lines)
* transaction:  BPR02 (negated when BPR03 = D) == sum of CLP04 - sum of PLB amounts
                (PLB amounts are subtracted: a negative PLB raises the check)
"""

from __future__ import annotations

from decimal import Decimal

from .errors import X12Warning
from .models import ZERO, Claim, ServiceLine, Transaction835


def _service_warning(service: ServiceLine, adjusted: Decimal) -> X12Warning:
    return X12Warning(
        service.segment,
        "SVC",
        service.position,
        f"service line does not balance: charge {service.charge} - paid {service.paid} = "
        f"{service.charge - service.paid}, adjustments total {adjusted}",
        code="service-unbalanced",
    )


def service_warnings(service: ServiceLine) -> list[X12Warning]:
    adjusted = service.adjustment_total
    if service.charge - service.paid == adjusted:
        return []
    return [_service_warning(service, adjusted)]


def claim_warnings(claim: Claim) -> list[X12Warning]:
    """Plain loops: this runs once per claim on files of 100,000 claims."""
    found: list[X12Warning] = []
    claim_level = ZERO
    patient = ZERO
    for adjustment in claim.adjustments:
        claim_level += adjustment.amount
        if adjustment.group == "PR":
            patient += adjustment.amount
    line_level = ZERO
    for service in claim.services:
        adjusted = ZERO
        for adjustment in service.adjustments:
            adjusted += adjustment.amount
            if adjustment.group == "PR":
                patient += adjustment.amount
        if service.charge - service.paid != adjusted:
            found.append(_service_warning(service, adjusted))
        line_level += adjusted
    if claim.charge - claim.paid != claim_level + line_level:
        found.append(
            X12Warning(
                claim.segment,
                "CLP",
                claim.position,
                f"claim {claim.claim_id} does not balance: charge {claim.charge} - paid {claim.paid} = "
                f"{claim.charge - claim.paid}, adjustments total {claim_level + line_level} "
                f"(claim level {claim_level}, service lines {line_level})",
                code="claim-unbalanced",
            )
        )
    if patient != claim.patient_responsibility:
        found.append(
            X12Warning(
                claim.segment,
                "CLP",
                claim.position,
                f"claim {claim.claim_id}: CLP05 patient responsibility {claim.patient_responsibility} "
                f"differs from its PR adjustments {patient}",
                code="claim-pr-mismatch",
                element=5,
            )
        )
    return found


def transaction_warnings(transaction: Transaction835, *, bpr_segment: int, bpr_position: int) -> list[X12Warning]:
    expected = transaction.claims_paid_total - transaction.plb_total
    if transaction.signed_total_paid == expected:
        return []
    direction = " (debit)" if transaction.credit_debit == "D" else ""
    return [
        X12Warning(
            bpr_segment,
            "BPR",
            bpr_position,
            f"payment {transaction.total_paid}{direction} does not equal claim payments "
            f"{transaction.claims_paid_total} minus provider adjustments {transaction.plb_total} "
            f"= {expected}",
            code="transaction-unbalanced",
            element=2,
        )
    ]
