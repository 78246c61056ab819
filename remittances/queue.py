"""The unmatched queue (issue 9): remittance claims that wait for staff (unmatched, held
reversals, refused by a rule) are matched by hand to one of the practice's claims and posted, or
dismissed as not ours.

Matching by hand protects the books: when the remittance claim and the chosen claim disagree on
the payer, the patient's name or the date of service, `remittance_claim_match` refuses with the
list of differences unless the user confirms them (`confirm_mismatch=True`) with a reason; who
confirmed what is kept (`RemittanceClaimAction`, and the claim's note). The admin picker and the
API use the same rule (`remittance_claim_mismatches`) and the same ranking of likely candidates
(`remittance_claim_candidates`).
"""

import re
import unicodedata

from django.db import transaction
from django.db.models import Q

from credits.services import ClaimResultBatch
from ledger.access import ensure_staff
from ledger.errors import NotFound, RuleViolation
from ledger.inputs import require_reason
from ledger.locks import lock_claims, lock_encounters, lock_patients
from ledger.models import Claim
from remittances.models import RemittanceClaim, RemittanceClaimAction
from remittances.posting import PostResult, _book, _claim_rows, _post_claim, _Row

CANDIDATE_LIMIT = 20


def _name_key(value: str) -> str:
    """Letters and digits only, case- and accent-insensitive: "O'Brien-Smith" == "OBRIEN SMITH"."""
    value = unicodedata.normalize("NFKD", value or "")
    return re.sub(r"[^0-9a-z]", "", "".join(ch for ch in value if not unicodedata.combining(ch)).casefold())


def _split_name(patient_name: str) -> tuple[str, str]:
    """The 835's "LAST, FIRST" (NM1*QC) as two keys."""
    last, _, first = (patient_name or "").partition(",")
    return _name_key(last), _name_key(first)


def remittance_claim_mismatches(rc: RemittanceClaim, claim: Claim) -> list[dict]:
    """Where the remittance claim and the claim disagree: payer, patient name, date of service.
    Each difference is {"field", "remittance", "claim"}; what the 835 does not say is not a
    difference. `rc` with its transaction, `claim` with its payer and encounter's patient."""
    out = []
    tx = rc.transaction
    if tx.payer_id:
        if tx.payer_id != claim.payer_id:
            out.append({"field": "payer", "remittance": tx.payer.name if tx.payer else tx.payer_name,
                        "claim": claim.payer.name})
    elif tx.payer_name and _name_key(tx.payer_name) != _name_key(claim.payer.name):
        out.append({"field": "payer", "remittance": tx.payer_name, "claim": claim.payer.name})
    patient = claim.encounter.patient
    last, first = _split_name(rc.patient_name)
    if last and (last != _name_key(patient.last_name) or (first and first != _name_key(patient.first_name))):
        out.append({"field": "patient", "remittance": rc.patient_name,
                    "claim": f"{patient.last_name}, {patient.first_name}"})
    dos = claim.encounter.date_of_service
    if rc.service_date and rc.service_date != dos:
        out.append({"field": "date_of_service", "remittance": rc.service_date.isoformat(), "claim": dos.isoformat()})
    return out


def _describe(mismatches: list[dict]) -> str:
    labels = {"payer": "payer", "patient": "patient", "date_of_service": "date of service"}
    return "; ".join(f"{labels[m['field']]}: the 835 says {m['remittance']!s}, the claim {m['claim']!s}"
                     for m in mismatches)


def remittance_claim_candidates(rc: RemittanceClaim, *, limit: int = CANDIDATE_LIMIT) -> list[tuple]:
    """The practice's claims most likely to be the one `rc` pays, best first: [(claim, mismatches,
    score)]. Looked for by claim number, payer claim number, member id, patient name and date of
    service; ranked by how many of those agree (and the billed amount)."""
    last, first = _split_name(rc.patient_name)
    q = Q(claim_number__iexact=rc.claim_number)
    if rc.payer_claim_number:
        q |= Q(payer_claim_number=rc.payer_claim_number)
    if rc.member_id:
        q |= Q(encounter__patient__member_id__iexact=rc.member_id)
    if rc.service_date:
        q |= Q(encounter__date_of_service=rc.service_date)
    raw_last = (rc.patient_name or "").split(",")[0].strip()
    if raw_last:
        q |= Q(encounter__patient__last_name__iexact=raw_last)
    found = (Claim.objects.filter(q, practice_id=rc.practice_id)
             .select_related("payer", "encounter__patient").order_by("-pk")[:500])
    scored = []
    for claim in found:
        mismatches = remittance_claim_mismatches(rc, claim)
        patient = claim.encounter.patient
        score = 8 * (claim.claim_number.casefold() == rc.claim_number.casefold()) \
            + 4 * bool(rc.member_id and patient.member_id.casefold() == rc.member_id.casefold()) \
            + 2 * bool(last and last == _name_key(patient.last_name)) \
            + 1 * bool(first and first == _name_key(patient.first_name)) \
            + 3 * bool(rc.service_date and rc.service_date == claim.encounter.date_of_service) \
            + 1 * (claim.billed_amount == rc.charge) - 3 * len(mismatches)
        scored.append((claim, mismatches, score))
    scored.sort(key=lambda t: (-t[2], len(t[1]), -t[0].pk))
    return scored[:limit]


def _waiting_claim(remittance_claim_id, actor) -> RemittanceClaim:
    rc = RemittanceClaim.objects.filter(pk=remittance_claim_id).select_related("transaction__payer", "file") \
        .defer("file__content").first()
    if rc is None:
        raise NotFound(f"unknown remittance claim {remittance_claim_id}", field="remittance_claim")
    ensure_staff(actor, rc.practice_id)
    return rc


def _not_waiting(rc) -> RuleViolation:
    return RuleViolation(f"remittance claim {rc.pk} is {rc.get_state_display().lower()}; only a claim waiting for "
                         "staff can be matched or dismissed", field="remittance_claim")


def remittance_claim_match(*, remittance_claim_id: int, claim_id: int, actor, reason: str,
                           confirm_mismatch: bool = False) -> RemittanceClaim:
    """Staff match a waiting remittance claim to one of the practice's claims by hand, and post it.
    A different payer, patient name or date of service is refused (RuleViolation listing them)
    unless `confirm_mismatch`; the confirmation, the user and the reason are recorded."""
    reason = require_reason(reason)
    rc = _waiting_claim(remittance_claim_id, actor)
    claim = Claim.objects.filter(pk=claim_id, practice_id=rc.practice_id) \
        .select_related("payer", "encounter__patient").first()
    if claim is None:
        raise NotFound(f"unknown claim {claim_id} in this practice", field="claim")
    if rc.state not in RemittanceClaim.WAITING:
        raise _not_waiting(rc)
    mismatches = remittance_claim_mismatches(rc, claim)
    if mismatches and not confirm_mismatch:
        raise RuleViolation(f"claim {claim.claim_number} does not look like this remittance claim: "
                            f"{_describe(mismatches)}. Check it is the right claim and confirm the difference "
                            "(confirm_mismatch) to post it anyway.", field="confirm_mismatch", code="mismatch")

    with transaction.atomic():
        # the global lock order: patient, encounter, claim, then the remittance claim (re-checked: still waiting)
        lock_patients([claim.encounter.patient_id])
        enc = lock_encounters([claim.encounter_id])[claim.encounter_id]
        locked = lock_claims([claim.pk])[claim.pk]
        if not _claim_rows(RemittanceClaim, [rc.pk], states=RemittanceClaim.WAITING):
            rc.refresh_from_db(fields=["state"])
            raise _not_waiting(rc)
        row = _Row(*(getattr(rc, name) for name in ("id", "transaction_id", "claim_number", "status_code", "charge",
                                                     "paid", "patient_responsibility", "pr_adjustments",
                                                     "other_adjustments", "payer_claim_number", "segment")))
        batch = ClaimResultBatch(actor=actor)
        payer_credit_entry = _post_claim(row, locked, enc, tx=rc.transaction, filename=rc.file.filename, batch=batch,
                                         actor=actor, result=PostResult())
        if row.state in RemittanceClaim.WAITING:  # e.g. a reversal of a payment this claim never had
            raise RuleViolation(f"claim {claim.claim_number} cannot take this remittance claim: {row.note}",
                                field="claim")
        batch.flush()
        _book(rc.file_id, claims=batch.entry_ids,
              payer_credits={rc.pk: payer_credit_entry} if payer_credit_entry else None)
        confirmed = f"; confirmed by {actor.get_username()}: {_describe(mismatches)}" if mismatches else ""
        what = f"Matched by hand by {actor.get_username()} to claim {claim.claim_number}: {reason}{confirmed}"
        rc.state, rc.claim, rc.posted_at, rc.posted_by_id = row.state, locked, row.posted_at, row.posted_by_id
        rc.note = f"{what} | {row.note}" if row.note else what
        rc.save(update_fields=["state", "note", "claim", "posted_at", "posted_by"])
        RemittanceClaimAction.objects.create(remittance_claim=rc, practice_id=rc.practice_id,
                                             action=RemittanceClaimAction.Action.MATCHED, claim=locked,
                                             confirmed_mismatches=mismatches, reason=reason, actor=actor)
    return rc


def remittance_claim_dismiss(*, remittance_claim_id: int, actor, reason: str) -> RemittanceClaim:
    """"Not ours": take a waiting remittance claim off the queue without posting anything. A
    claim already posted (or dismissed) cannot be."""
    reason = require_reason(reason)
    rc = _waiting_claim(remittance_claim_id, actor)
    if rc.state not in RemittanceClaim.WAITING:
        raise _not_waiting(rc)
    with transaction.atomic():
        if not _claim_rows(RemittanceClaim, [rc.pk], states=RemittanceClaim.WAITING):
            rc.refresh_from_db(fields=["state"])
            raise _not_waiting(rc)
        was = rc.get_state_display().lower()
        rc.state = RemittanceClaim.State.DISMISSED
        rc.note = f"Dismissed by {actor.get_username()} (was {was}: {rc.note}): {reason}"
        rc.save(update_fields=["state", "note"])
        RemittanceClaimAction.objects.create(remittance_claim=rc, practice_id=rc.practice_id,
                                             action=RemittanceClaimAction.Action.DISMISSED, reason=reason,
                                             actor=actor)
    return rc
