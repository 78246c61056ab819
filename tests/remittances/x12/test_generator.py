"""The synthetic 835 generator reads back exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from remittances.x12 import ClaimSpec, generate_835, read_835

from ._samples import count_clp_segments

D = Decimal


def test_round_trip_1000_claims_exact():
    data = generate_835(claims=1000, seed=11)
    result = read_835(data)
    assert result.warnings == []
    assert result.claim_count == 1000 == count_clp_segments(data)
    (tx,) = result.transactions
    claims = tx.claims
    assert len({c.claim_id for c in claims}) == 1000
    assert tx.total_paid == sum((c.paid for c in claims), D(0)) == tx.claims_paid_total
    for claim in claims:
        assert claim.charge == sum((s.charge for s in claim.services), D(0))
        assert claim.paid == sum((s.paid for s in claim.services), D(0))
        assert claim.charge - claim.paid == claim.adjustment_total
        assert claim.patient_responsibility == claim.adjustment_total_for("PR")
        assert all(a.amount == a.amount.quantize(D("0.01")) for a in claim.all_adjustments())
    assert {c.status_code for c in claims} == {"1", "2", "4"}
    assert all(c.paid == 0 for c in claims if c.is_denied)


def test_generator_is_deterministic_per_seed():
    assert generate_835(claims=50, seed=1) == generate_835(claims=50, seed=1)
    assert generate_835(claims=50, seed=1) != generate_835(claims=50, seed=2)


def test_explicit_claim_ids_and_specs():
    specs = [ClaimSpec("SPEC-1", charge="120.00", paid="90.00", patient_responsibility=[("3", "20.00")])]
    result = read_835(generate_835(specs=specs, claim_ids=["A", "B", "C"]))
    assert [c.claim_id for c in result.iter_claims()] == ["SPEC-1", "A", "B", "C"]
    spec_claim = next(result.iter_claims())
    assert [(a.group, a.reason, a.amount) for a in spec_claim.all_adjustments()] == [
        ("CO", "45", D("10.00")),
        ("PR", "3", D("20.00")),
    ]
    assert result.warnings == []


def test_claim_ids_must_match_count():
    with pytest.raises(ValueError):
        generate_835(claims=2, claim_ids=["A"])


def test_several_transactions_and_plb():
    data = generate_835(claims=95, claims_per_transaction=30, plb=[("WO", "PCN9", "-12.34"), ("72", "R1", "5")])
    result = read_835(data)
    assert result.warnings == []
    assert [t.claim_count for t in result.transactions] == [30, 30, 30, 5]
    assert [len(t.plb) for t in result.transactions] == [0, 0, 0, 2]
    assert len({t.trace_number for t in result.transactions}) == 4


def test_seven_plb_adjustments_use_two_segments():
    plb = [("CS", f"R{n}", "1.00") for n in range(7)]
    result = read_835(generate_835(claims=1, plb=plb))
    assert len(result.transactions[0].plb) == 7 and result.warnings == []
