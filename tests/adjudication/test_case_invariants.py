"""Stateful property test of adjudication on top of the ledger machine: every money operation of
tests/credits/test_invariants.py, plus the scan, proposals, decisions (four eyes) and elections,
in random order on PostgreSQL. After every step the money invariants of the ledger machine hold,
and the cases tell the truth about the money:

* never two cases for the same money (one per patient credit, one per payer credit, one open per
  visit);
* right after a scan, every credit balance has a case (available patient credits, open payer
  credits) and no open case is about money that is gone;
* a resolved case has an outcome and a time; an automatic resolution names money that really left
  (an "applied" case's credit was applied, a "refund_patient" one's was refunded, ...);
* whoever proposed never decided (four eyes), and a carried-out refund proposal has its refund.

The adjudication operations are counted like the ledger's: the test fails when one never succeeded."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from adjudication.models import Case, Proposal
from adjudication.scan import scan_practice
from adjudication.services import notices, proposals
from adjudication.services.core import money_left
from credits.models import Credit, PayerCredit, Refund
from tests.credits.test_invariants import OPERATIONS, LedgerMachine, counted

CASE_OPERATIONS: list[str] = []
case_operation = counted(CASE_OPERATIONS)  # counted like the ledger machine's, listed apart


def check_cases(practice_id: int, *, just_scanned: bool) -> None:
    cases = Case.objects.filter(practice_id=practice_id).select_related("credit", "payer_credit", "encounter")
    per_credit, per_payer_credit, open_per_visit = {}, {}, {}
    for c in cases:
        if c.credit_id:
            assert c.credit_id not in per_credit, f"two cases for credit {c.credit_id}"
            per_credit[c.credit_id] = c
        if c.payer_credit_id:
            assert c.payer_credit_id not in per_payer_credit, f"two cases for payer credit {c.payer_credit_id}"
            per_payer_credit[c.payer_credit_id] = c
        if c.kind == Case.Kind.ENCOUNTER and c.state != Case.State.RESOLVED:
            assert c.encounter_id not in open_per_visit, f"two open cases for visit {c.encounter_id}"
            open_per_visit[c.encounter_id] = c
        if c.state == Case.State.RESOLVED:
            assert c.outcome and c.resolved_at, f"case {c.pk} resolved without an outcome"
            if c.automatic and c.kind == Case.Kind.PATIENT_CREDIT:
                bucket = {Case.Outcome.APPLIED: c.credit.applied_amount,
                          Case.Outcome.REFUND_PATIENT: c.credit.refunded_amount,
                          Case.Outcome.MONEY_GONE: c.credit.removed_amount}.get(c.outcome)
                assert bucket is None or bucket > 0, f"case {c.pk} says {c.outcome} but the credit shows none"
                assert money_left(c) == 0, f"case {c.pk} resolved by itself while its money is still there"
        elif just_scanned:
            assert money_left(c) > 0, f"open case {c.pk} ({c.get_state_display()}) is about money that is gone"
    if just_scanned:
        for credit in Credit.objects.filter(practice_id=practice_id, state=Credit.State.AVAILABLE, on_hand__gt=0):
            assert credit.pk in per_credit, f"available credit {credit.pk} ({credit.on_hand}) has no case after a scan"
        for pc in PayerCredit.objects.filter(practice_id=practice_id, state=PayerCredit.State.OPEN):
            assert pc.pk in per_payer_credit, f"open payer credit {pc.pk} has no case after a scan"
    for p in Proposal.objects.filter(case__practice_id=practice_id):
        assert p.decided_by_id is None or p.decided_by_id != p.proposed_by_id, f"proposal {p.pk} decided by its proposer"
        if p.state == Proposal.State.CARRIED_OUT and p.kind == Proposal.Kind.REFUND_PATIENT:
            assert Refund.objects.filter(pk=p.result.get("refund")).exists(), f"proposal {p.pk} carried out, no refund"
    live = Proposal.objects.filter(case__practice_id=practice_id, state__in=Proposal.LIVE).values_list("case_id",
                                                                                                        flat=True)
    assert len(list(live)) == len(set(live)), "a case with two live proposals"


class CaseMachine(LedgerMachine):
    just_scanned = False

    @classmethod
    def never_succeeded(cls) -> str:
        missing = [op for op in [*OPERATIONS, *CASE_OPERATIONS] if not cls.outcomes[(op, "ok")]]
        if not missing:
            return ""
        return "never succeeded: " + ", ".join(
            f"{op}: " + (", ".join(f"{n} {o}" for (name, o), n in sorted(cls.outcomes.items()) if name == op)
                         or "never run") for op in missing)

    def something_for_every_rule(self):
        """The ledger machine's starting work, then a scan and a proposal waiting for a manager, so
        deciding has work from the first step (a proposal made by a random step is often decided,
        refused or overtaken before the next draw finds it)."""
        super().something_for_every_rule()
        scan_practice(practice_id=self.practice.pk, actor=self.clerk, reason="First scan")
        first = Case.objects.filter(practice=self.practice, kind=Case.Kind.PATIENT_CREDIT).open().order_by("pk").first()
        assert first is not None, "the starting books have an available credit"
        proposals.case_propose(case=first.pk, kind="refund_patient", method="check", actor=self.clerk,
                               reason="The patient asked for a check")

    def open_cases(self, *states):
        qs = Case.objects.filter(practice=self.practice).open()
        return qs.filter(state__in=states) if states else qs

    @rule()
    @case_operation
    def scan(self):
        result = self.attempt(scan_practice, practice_id=self.practice.pk, actor=self.clerk, reason="Scan")
        assert result is not None, "the scan was refused"
        self.just_scanned = True

    @rule(data=st.data(), kind=st.sampled_from(["refund_patient", "apply_balances", "refund_payer"]),
          pct=st.one_of(st.just(100), st.integers(1, 120)), by_manager=st.booleans())
    @case_operation
    def propose(self, data, kind, pct, by_manager):
        case_id = self.pick(data, self.open_cases(Case.State.IDENTIFIED, Case.State.INVESTIGATING,
                                                  Case.State.WAITING_PAYER))
        if case_id is None:
            return
        case = Case.objects.select_related("credit", "payer_credit", "encounter").get(pk=case_id)
        left = money_left(case)
        amount = max(Decimal("0.01"), (left * pct / 100).quantize(Decimal("0.01")))
        extra = {"method": "check"} if kind == "refund_patient" and data.draw(st.booleans()) else {}
        self.attempt(proposals.case_propose, case=case_id, kind=kind, amount=amount,
                     actor=self.manager if by_manager else self.clerk, reason="Proposed", **extra)

    @rule(data=st.data(), who=st.sampled_from(["manager", "manager2", "clerk"]), approve=st.booleans(),
          with_reference=st.booleans())
    @case_operation
    def decide(self, data, who, approve, with_reference):
        case_id = self.pick(data, self.open_cases(Case.State.PROPOSED, Case.State.APPROVED))
        if case_id is None:
            return
        actor = getattr(self, who)
        case = Case.objects.get(pk=case_id)
        if case.state == Case.State.APPROVED:
            self.attempt(proposals.case_carry_out, case=case_id, actor=actor, reason="Check mailed",
                         reference="CHK-77" if with_reference else "")
        elif approve:
            self.attempt(proposals.case_approve, case=case_id, actor=actor, reason="Approved",
                         reference="CHK-42" if with_reference else "")
        else:
            self.attempt(proposals.case_reject, case=case_id, actor=actor, reason="Not this way")

    @precondition(lambda self: self.has["available"])
    @rule(data=st.data(), election=st.sampled_from(["keep", "refund"]))
    @case_operation
    def election(self, data, election):
        case_id = self.pick(data, self.open_cases(Case.State.IDENTIFIED, Case.State.INVESTIGATING)
                            .filter(kind=Case.Kind.PATIENT_CREDIT))
        if case_id is None:
            return
        self.attempt(notices.case_record_election, case=case_id, actor=self.clerk, election=election,
                     reason="The patient called")

    @invariant()
    def cases_tell_the_truth(self):
        check_cases(self.practice.pk, just_scanned=self.just_scanned)
        self.just_scanned = False


@pytest.mark.django_db
def test_random_operations_with_cases_keep_every_invariant():
    CaseMachine.fresh()
    run_state_machine_as_test(
        CaseMachine,
        # derandomized: the machine draws among some 30 rules, and in 25 random examples one of them
        # (a write-off needs an owing, payable visit) now and then never found its work; 40 fixed
        # examples prove the same every run
        settings=hsettings(max_examples=40, stateful_step_count=30, deadline=None, print_blob=False, derandomize=True,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )
    assert not CaseMachine.never_succeeded(), (CaseMachine.never_succeeded(), dict(CaseMachine.outcomes))
