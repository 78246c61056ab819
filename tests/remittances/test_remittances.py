"""Posting 835 remittances (remittances/posting.py) through the services: worked examples A, B
and E driven by 835 files, nothing twice, reversal pairs, payer credits, the unmatched queue,
and every real sample file."""

from datetime import date
from decimal import Decimal as D

import pytest

from credits.models import Credit, PayerCredit
from ledger.errors import RuleViolation
from ledger.models import Account, Claim, JournalLine
from remittances.models import RemittanceClaim, RemittanceFile
from remittances.nightly import nightly_run
from remittances.posting import remittance_file_post
from remittances.queue import remittance_claim_match
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835
from tests.remittances.x12._samples import missing, sample_bytes, sample_names, samples_dir

pytestmark = pytest.mark.django_db

PAYER_ID = "1999999999"
SAMPLES = samples_dir()  # without the samples these tests fail under CI (they are the real payers' files)


@pytest.fixture
def w(world):
    world.payer.payer_identifier = PAYER_ID
    world.payer.save()
    return world


def import_835(world, data: bytes, name="era.835"):
    received = remittance_file_receive(practice_id=world.practice.pk, data=data, filename=name, actor=world.clerk)
    if received.status == "received":
        remittance_file_post(file_id=received.file.pk, actor=world.clerk)
    received.file.refresh_from_db()
    return received


def era(*specs, icn=1, check=None, plb=None):
    return generate_835(specs=list(specs), interchange_control_number=icn, check_number=check or f"CHK{icn}",
                        payer_id=PAYER_ID, plb=plb)


def nightly(world):
    return nightly_run(practice_id=world.practice.pk)


def test_example_a_by_835(w):
    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 3, 3), charge="200.00", number="A-0303")
    w.pay(pat, "50.00", encounter=enc)
    r = import_835(w, era(ClaimSpec("A-0303", charge="200.00", paid="150.00", patient_responsibility=[("2", "20.00")])))
    assert r.as_dict()["status"] == "imported" and r.file.claim_count == 1
    claim.refresh_from_db()
    enc.refresh_from_db()
    assert (claim.state, claim.paid_amount, enc.remittance_pr) == ("paid", D("150.00"), D("20.00"))
    assert nightly(w).applied_total == D("20.00")
    c = Credit.objects.get(patient=pat)
    assert (c.state, c.on_hand) == ("available", D("30.00"))


def test_example_b_reversal_and_correction_in_one_file(w):
    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 4, 10), charge="200.00", number="B-0410")
    import_835(w, era(ClaimSpec("B-0410", charge="200.00", paid="80.00", patient_responsibility=[("1", "120.00")])))
    w.pay(pat, "120.00", encounter=enc, channel="portal")
    enc.refresh_from_db()
    assert enc.balance == 0

    corrected = era(ClaimSpec("B-0410", status="22", charge="-200.00", paid="-80.00",
                              patient_responsibility=[("1", "-120.00")]),
                    ClaimSpec("B-0410", charge="200.00", paid="130.00", patient_responsibility=[("1", "70.00")]), icn=2)
    r = import_835(w, corrected)
    assert sorted(RemittanceClaim.objects.filter(file=r.file).values_list("state", flat=True)) == ["posted", "posted"]
    claim.refresh_from_db()
    enc.refresh_from_db()
    assert (claim.state, claim.paid_amount, enc.remittance_pr, enc.balance) == ("paid", D("130.00"), D("70.00"), 0)
    (over,) = Credit.objects.filter(patient=pat)
    assert (over.source, over.state, over.on_hand, over.payment.channel) == ("overpayment", "available", D("50.00"),
                                                                            "portal")


def test_example_e_resubmission_then_new_decision(w):
    from credits.services import claim_resubmit

    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 7, 2), charge="200.00", number="E-0702")
    import_835(w, era(ClaimSpec("E-0702", charge="200.00", paid="120.00", patient_responsibility=[("2", "80.00")])))
    w.pay(pat, "80.00", encounter=enc)
    claim_resubmit(claim_id=claim.pk, actor=w.clerk, reason="Corrected coding")
    import_835(w, era(ClaimSpec("E-0702", charge="200.00", paid="50.00", patient_responsibility=[("2", "30.00")]),
                      icn=2))
    assert nightly(w).applied_total == D("30.00")
    c = Credit.objects.get(patient=pat)
    enc.refresh_from_db()
    assert (c.source, c.state, c.on_hand, enc.balance) == ("resubmission", "available", D("50.00"), 0)


def test_same_file_or_same_payment_twice_posts_nothing(w):
    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 5, 1), charge="100.00", number="D-1")
    data = era(ClaimSpec("D-1", charge="100.00", paid="70.00", patient_responsibility=[("3", "30.00")]))
    first = import_835(w, data)
    lines = JournalLine.objects.count()
    again = import_835(w, data, name="again.835")
    assert again.status == "duplicate" and again.file.duplicate_of_id == first.file.pk
    # the same payment in other bytes (CRLF instead of LF): same sender, ISA13, ST02, TRN02
    crlf = import_835(w, data.replace(b"\n", b"\r\n"), name="crlf.835")
    assert crlf.status == "duplicate"
    # an interchange repeated inside one file is read once
    doubled = era(ClaimSpec("D-1", charge="100.00", paid="70.00", patient_responsibility=[("3", "30.00")]), icn=7)
    inside = import_835(w, doubled + doubled, name="doubled.835")
    assert inside.file.duplicate_transactions == 1
    assert RemittanceClaim.objects.filter(file=inside.file).count() == 1
    claim.refresh_from_db()
    assert claim.remittance_count == 1  # doubled.835 paid the claim again: a payer credit, not a second posting
    assert PayerCredit.objects.filter(claim=claim, reason="duplicate_payment").count() == 1
    assert JournalLine.objects.count() > lines


def test_reversal_of_unknown_payment_is_held_then_matched_by_hand(w):
    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 6, 1), charge="100.00", number="R-1")
    r = import_835(w, era(ClaimSpec("R-1", status="22", charge="-100.00", paid="-60.00",
                                    patient_responsibility=[("2", "-40.00")])))
    (rc,) = RemittanceClaim.objects.filter(file=r.file)
    assert rc.state == "held_reversal" and "never posted" in rc.note
    claim.refresh_from_db()
    assert claim.state == "submitted" and claim.paid_amount == 0  # never guessed at

    r2 = import_835(w, era(ClaimSpec("UNKNOWN-9", charge="100.00", paid="60.00",
                                     patient_responsibility=[("2", "40.00")]), icn=3))
    (queued,) = RemittanceClaim.objects.filter(file=r2.file)
    assert (queued.state, queued.note) == ("unmatched", "no claim UNKNOWN-9 in this practice")
    # the 835 names another patient and date than the claim: refused until confirmed
    with pytest.raises(RuleViolation) as refused:
        remittance_claim_match(remittance_claim_id=queued.pk, claim_id=claim.pk, actor=w.clerk,
                               reason="Payer used the old claim number")
    assert "patient: the 835 says DOE, JANE" in refused.value.message and "date of service" in refused.value.message
    queued.refresh_from_db()
    assert queued.state == "unmatched"
    remittance_claim_match(remittance_claim_id=queued.pk, claim_id=claim.pk, actor=w.clerk,
                           reason="Payer used the old claim number", confirm_mismatch=True)
    queued.refresh_from_db()
    claim.refresh_from_db()
    enc.refresh_from_db()
    assert (queued.state, queued.claim_id, claim.state, enc.remittance_pr) == ("posted", claim.pk, "paid", D("40.00"))


def test_payer_overpayment_then_plb_recoupment_closes_it(w):
    pat = w.patient()
    _, claim = w.visit(pat, date(2026, 2, 2), charge="100.00", number="P-1")
    spec = dict(charge="100.00", paid="80.00", patient_responsibility=[("2", "20.00")], payer_claim_number="PCN-77")
    import_835(w, era(ClaimSpec("P-1", **spec), icn=1))
    import_835(w, era(ClaimSpec("P-1", **spec), icn=2))  # paid twice
    pc = PayerCredit.objects.get(claim=claim)
    assert (pc.reason, pc.state, pc.amount) == ("duplicate_payment", "open", D("80.00"))

    r = import_835(w, era(plb=[("WO", "PCN-77", "80.00")], icn=3))
    pc.refresh_from_db()
    assert pc.state == "recouped" and pc.resolved_amount == D("80.00")
    assert r.file.plb_total == D("80.00")
    due = sum(JournalLine.objects.filter(account=Account.PAYER_CREDITS).values_list("amount", flat=True), D(0))
    assert due == 0


def test_paid_above_charge_is_a_payer_credit(w):
    pat = w.patient()
    _, claim = w.visit(pat, date(2026, 2, 3), charge="100.00", number="X-1")
    import_835(w, era(ClaimSpec("X-1", charge="100.00", paid="130.00")))
    claim.refresh_from_db()
    assert claim.paid_amount == D("100.00")
    pc = PayerCredit.objects.get(claim=claim)
    assert (pc.reason, pc.amount) == ("above_allowed", D("30.00"))


def test_journal_balances_and_cash_equals_the_checks(w):
    pat = w.patient()
    for n in range(3):
        w.visit(pat, date(2026, 1, 10 + n), charge="100.00", number=f"J-{n}")
    r = import_835(w, era(*[ClaimSpec(f"J-{n}", charge="100.00", paid="75.00",
                                      patient_responsibility=[("2", "25.00")]) for n in range(3)],
                          plb=[("L6", "INTEREST", "-1.50")]))
    assert r.file.paid_total == D("226.50")
    cash = sum(JournalLine.objects.filter(account=Account.CASH).values_list("amount", flat=True), D(0))
    assert cash == D("226.50")
    assert sum(JournalLine.objects.values_list("amount", flat=True), D(0)) == 0


SAMPLE_OUTCOMES = {
    "affect-edi835__nevada_medicaid_unpadded_isa.txt": ("imported", 3),
    "badx12__X221-multiple-claims-single-check.edi": ("imported", 9),
    "badx12__error_validation_MALFORMED.edi": ("imported", 2),
    "chs-edi835__test_no_LX.835": ("imported", 1),
    "edi835parser__blue_cross_nc_sample_NO_ENVELOPE.txt": ("imported", 1),
    "edi835parser__emedny_sample.txt": ("imported", 3),
    "lfh-x12__managed-care.835": ("imported", 2),
    "lfh-x12__medicare-part-a.835": ("imported", 2),
    "lfh-x12__secondary-payment.835": ("imported", 2),
    "oopfactory__835_4010_DeIdent_01.dat": ("imported", 96),
    "oopfactory__835_5010_WithMultipleInterchanges.txt": ("imported", 56),
    "pyx12__835_mult_loops_5010.txt": ("imported", 1),
    "pyx12__835_simple_4010_reversal_plb.txt": ("imported", 3),
    "pyx12__bad_header_looping_4010_MALFORMED.txt": ("refused", 0),
    "tastypackets__multi-line-not-delimited_NEWLINE_TERM.edi": ("imported", 3),
    "tigershark__835-example-2_pipe.txt": ("imported", 2),
}


def test_every_sample_file_is_listed():
    names = set(sample_names())
    if not names:
        missing(SAMPLES)
    assert names == set(SAMPLE_OUTCOMES)


@pytest.mark.parametrize("name", sorted(SAMPLE_OUTCOMES))
def test_sample_file_imported_exactly_or_refused(w, name):
    status, claims = SAMPLE_OUTCOMES[name]
    data = sample_bytes(name)
    lines_before = JournalLine.objects.count()
    r = import_835(w, data, name=name)
    out = r.as_dict()
    assert out["status"] == status
    if status == "refused":
        (err,) = out["errors"]
        assert err["segment"] > 0 and err["segment_id"] and err["position"] > 0 and err["message"]
        assert not RemittanceClaim.objects.exists() and JournalLine.objects.count() == lines_before
        return
    # every claim accounted for: read, stored and either posted or waiting for staff with a reason
    assert out["claims"] == claims == RemittanceClaim.objects.filter(file=r.file).count()
    assert not RemittanceClaim.objects.filter(file=r.file, state="pending").exists()
    assert all(rc.note for rc in RemittanceClaim.objects.filter(file=r.file, state__in=RemittanceClaim.WAITING))
    assert r.file.status == RemittanceFile.Status.POSTED
    again = import_835(w, data, name=name)
    assert again.status == "duplicate"
    assert Claim.objects.filter(remittance_count__gt=0).count() == 0  # none of these claims are ours


def test_a_refused_file_keeps_its_hash_size_error_and_first_64_kib_only(w):
    import hashlib

    from remittances.receive import REFUSED_KEEP_BYTES

    good = era(ClaimSpec("Z-1", charge="100.00", paid="80.00"))
    data = good.replace(b"CLP*Z-1*1*100.00*80.00", b"CLP*Z-1*1*100.00*8O.00") + b"\n" + b"X" * (3 * 1024 * 1024)
    r = import_835(w, data, name="big-bad.835")
    assert r.status == "refused"
    (err,) = r.errors
    assert err["segment_id"] == "CLP" and err["position"] > 0 and "8O.00" in err["message"]
    f = RemittanceFile.objects.get(pk=r.file.pk)
    assert (f.size, f.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert REFUSED_KEEP_BYTES == 64 * 1024 and bytes(f.content) == data[:REFUSED_KEEP_BYTES]
    assert f.errors == [err] and not RemittanceClaim.objects.exists()
    # a small refused file is kept whole (it is its own first 64 KiB)
    small = import_835(w, b"ISA*00*garbage~", name="small.835")
    assert bytes(RemittanceFile.objects.get(pk=small.file.pk).content) == b"ISA*00*garbage~"


def test_a_duplicate_keeps_no_bytes_only_the_reference(w):
    import hashlib

    w.visit(w.patient(), date(2026, 5, 1), charge="100.00", number="DUP-1")
    data = era(ClaimSpec("DUP-1", charge="100.00", paid="70.00", patient_responsibility=[("3", "30.00")]))
    first = import_835(w, data)
    again = import_835(w, data, name="again.835")
    payment_again = import_835(w, data.replace(b"\n", b"\r\n"), name="crlf.835")  # same payment, other bytes
    for dup, received in ((again, data), (payment_again, data.replace(b"\n", b"\r\n"))):
        f = RemittanceFile.objects.get(pk=dup.file.pk)
        assert (f.status, f.duplicate_of_id, bytes(f.content)) == ("duplicate", first.file.pk, b"")
        assert (f.sha256, f.size) == (hashlib.sha256(received).hexdigest(), len(received))
    assert bytes(RemittanceFile.objects.get(pk=first.file.pk).content) == data  # the original, byte for byte
