"""Structure, errors, warnings, balancing and streaming of the 835 reader."""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

from remittances.x12 import (
    ClaimSpec,
    X12Error,
    generate_835,
    iter_claims,
    iter_transactions,
    read_835,
)

D = Decimal

SPECS = [
    ClaimSpec("C-1", charge="100.00", paid="60.00", patient_responsibility=[("2", "15.00")]),
    ClaimSpec("C-2", status="4", charge="250.00", paid="0", contractual_reason="50"),
]


def lines(**options) -> list[str]:
    """A generated file as a list of segments (without terminators)."""
    return generate_835(specs=SPECS, **options).decode().split("~\n")[:-1]


def build(segments: list[str]) -> bytes:
    return "".join(s + "~\n" for s in segments).encode()


def index_of(segments: list[str], prefix: str) -> int:
    return next(i for i, s in enumerate(segments) if s.startswith(prefix))


def refused(data: bytes) -> X12Error:
    with pytest.raises(X12Error) as info:
        read_835(data)
    return info.value


# -- errors ----------------------------------------------------------------------


def test_invalid_amount_names_segment_element_and_byte():
    segments = lines()
    at = index_of(segments, "CLP*C-1")
    segments[at] = "CLP*C-1*1*100.00*12.3.4*15.00*12*PCN1*11*1"
    data = build(segments)
    error = refused(data)
    position = data.index(b"CLP*C-1")
    assert (error.segment, error.segment_id, error.element, error.position) == (at + 1, "CLP", 4, position)
    assert str(error) == f"segment {at + 1} (CLP) at byte {position}, element 4: invalid claim payment amount '12.3.4'"


@pytest.mark.parametrize("amount", ["1E5", "+5", " 5", "5 ", "1,000.00", "5.", "NaN", "Infinity", "--1", "0x10", "١٢"])
def test_amounts_are_parsed_strictly(amount):
    segments = lines()
    at = index_of(segments, "CLP*C-1")
    segments[at] = f"CLP*C-1*1*{amount}*60*15*12*PCN1*11*1"
    error = refused(build(segments))
    assert error.segment_id == "CLP" and error.element == 3


@pytest.mark.parametrize("amount, value", [("-.5", D("-0.5")), (".28", D("0.28")), ("0012", D("12")), ("-310", D("-310"))])
def test_amount_forms_accepted(amount, value):
    segments = lines()
    at = index_of(segments, "CAS*CO*50")
    segments[at] = f"CAS*CO*50*{amount}"
    result = read_835(build(segments))
    claim = list(result.iter_claims())[1]
    assert claim.services[0].adjustments[0].amount == value


@pytest.mark.parametrize("element, amount, why", [
    (4, "1000000000000.00", "out of range (at most 999999999999.99 either way)"),  # issue 9: a DataError before
    (4, "-1000000000000", "out of range"),
    (3, "00001000000000000", "out of range"),
    (4, "60.001", "fractions of a cent (at most two decimals)"),
])
def test_amounts_beyond_the_money_columns_refuse_the_file(element, amount, why):
    """Money is NUMERIC(14, 2): an amount that does not fit is refused with where it is, not stored."""
    segments = lines()
    at = index_of(segments, "CLP*C-1")
    parts = segments[at].split("*")
    parts[element] = amount
    segments[at] = "*".join(parts)
    data = build(segments)
    error = refused(data)
    assert (error.segment, error.segment_id, error.element, error.position) == \
        (at + 1, "CLP", element, data.index(b"CLP*C-1"))
    assert f"{amount!r}: " in error.message and why in error.message, error.message


def test_the_largest_amount_is_read():
    segments = lines()
    at = index_of(segments, "CLP*C-2")
    segments[at] = "CLP*C-2*4*999999999999.99*0.00*0.00*12*PCN000000002*11*1"
    claim = list(read_835(build(segments)).iter_claims())[1]
    assert claim.charge == D("999999999999.99")


def test_quantities_may_have_more_decimals_than_money():
    segments = lines()
    at = index_of(segments, "SVC*HC:99213*100.00")
    segments[at] = "SVC*HC:99213*100.00*60.00**1.125"
    claim = list(read_835(build(segments)).iter_claims())[0]
    assert claim.services[0].units == D("1.125")
    segments[at] = "SVC*HC:99213*1.125*60.00**1"  # SVC02 is money: at most two decimals
    assert refused(build(segments)).element == 2


def test_stored_sums_that_do_not_fit_refuse_the_file():
    """The claim's PR and other adjustment sums, and the file's payment and PLB totals, are stored too."""
    segments = lines()
    at = index_of(segments, "CAS*CO*45")
    segments[at] = "CAS*CO*45*999999999999.99**A1*0.01"
    data = build(segments)
    error = refused(data)
    assert (error.segment_id, error.position) == ("CLP", data.index(b"CLP*C-1"))
    assert "other adjustments (CAS) add up to 1000000000000.00" in error.message

    # many adjustments below a billion each can still overflow the stored sum
    segments = lines()
    at = index_of(segments, "CAS*CO*45")
    segments[at:at + 1] = ["CAS*CO*45" + "*999999999.99**45" * 5 + "*999999999.99"] * 170  # 1,020 triplets
    error = refused(build(segments))
    assert error.segment_id == "CLP" and "other adjustments (CAS) add up to 1019999999989.80" in error.message
    segments[at:at + 170] = ["CAS*CO*45" + "*999999999.99**45" * 5 + "*999999999.99"] * 150  # 900: fits
    assert list(read_835(build(segments)).iter_claims())[0].adjustment_total_for("CO") == D("899999999991.00")

    segments = lines()
    se = index_of(segments, "SE*")
    segments[se:se] = ["PLB*1234567893*20241231*WO:X1*999999999999.99*WO:X2*1.00"]
    segments[index_of(segments, "SE*")] = "SE*31*0001"
    data = build(segments)
    error = refused(data)
    assert (error.segment_id, error.position) == ("PLB", data.index(b"PLB*"))
    assert "provider adjustments (PLB) of this payment add up to 1000000000000.99" in error.message

    one = generate_835(specs=SPECS).decode().split("~\n")[:-1]
    bpr = index_of(one, "BPR*")
    one[bpr] = one[bpr].replace("*60.00*", "*999999999999.99*")
    tx = one[index_of(one, "ST*"):index_of(one, "SE*") + 1]
    two = one[:index_of(one, "SE*") + 1] + [s.replace("0001", "0002") if s.startswith(("ST*", "SE*")) else s
                                            for s in tx] + one[index_of(one, "GE*"):]
    two[index_of(two, "GE*")] = "GE*2*1"
    error = refused(build(two))
    assert "the file's payments (BPR02) add up to 1999999999999.98" in error.message


def test_invalid_cas_amount_and_quantity():
    segments = lines()
    at = index_of(segments, "CAS*CO*50")
    segments[at] = "CAS*CO*50*250.00*x"
    error = refused(build(segments))
    assert (error.segment_id, error.element) == ("CAS", 4)


def test_clp_with_too_few_elements_is_refused():
    segments = lines()
    at = index_of(segments, "CLP*C-1")
    segments[at] = "CLP*C-1*1*100.00"
    error = refused(build(segments))
    assert (error.segment, error.segment_id) == (at + 1, "CLP")


@pytest.mark.parametrize("segment", ["CLP*X*1*10*10*0*12*P", "CAS*PR*1*5", "SVC*HC:99213*10*10", "NM1*QC*1*DOE"])
def test_claim_segments_outside_a_transaction_set_are_refused(segment):
    segments = lines()
    segments.insert(index_of(segments, "ST*835"), segment)  # between GS and ST
    error = refused(build(segments))
    assert error.segment_id == segment[:3].rstrip("*")
    assert "outside a transaction set" in error.message


def test_cas_before_any_claim_is_refused():
    segments = lines()
    segments.insert(index_of(segments, "LX*"), "CAS*PR*1*5")
    error = refused(build(segments))
    assert error.segment_id == "CAS" and "outside a claim" in error.message


def test_st_without_se_is_refused_at_the_next_envelope_segment():
    segments = lines()
    del segments[index_of(segments, "SE*")]
    error = refused(build(segments))
    assert error.segment_id == "GE" and "SE missing" in error.message


def test_missing_iea_is_refused_at_end_of_file():
    segments = lines()
    del segments[index_of(segments, "IEA*")]
    data = build(segments)
    error = refused(data)
    assert error.segment_id == "GE" and error.position == len(data)
    assert "without IEA" in error.message


def test_missing_ge_is_refused():
    segments = lines()
    del segments[index_of(segments, "GE*")]
    error = refused(build(segments))
    assert error.segment_id == "IEA" and "GE missing" in error.message


def test_truncated_file_is_refused():
    data = generate_835(specs=SPECS)
    error = refused(data[: len(data) // 2])
    assert "without SE" in error.message


@pytest.mark.parametrize("cut", [0, 1, 3, 50, 104])
def test_truncated_isa_is_refused(cut):
    data = b"  " + generate_835(specs=SPECS)[:cut] if cut else b""
    error = refused(data)
    assert error.segment in (0, 1)


def test_isa_with_wrong_element_count_is_refused():
    data = generate_835(specs=SPECS).replace(b"*00501*", b"*", 1)
    error = refused(data)
    assert (error.segment, error.segment_id) == (1, "ISA")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \r\n",
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3",
        "ISA".encode("utf-16"),
        b"Hello ISA*00*",
    ],
)
def test_garbage_is_refused(data):
    error = refused(data)
    assert error.segment == 0


def test_control_character_inside_a_segment_is_refused():
    data = generate_835(specs=SPECS).replace(b"JANE", b"JA\x00NE", 1)
    error = refused(data)
    assert error.segment_id == "NM1" and "0x00" in error.message
    assert error.position == data.index(b"\x00")


def test_invalid_segment_identifier_is_refused():
    segments = lines()
    segments.insert(index_of(segments, "NM1*QC"), "nm1*QC*1*DOE")
    error = refused(build(segments))
    assert "invalid segment identifier" in error.message


def test_transaction_must_start_with_bpr():
    segments = lines()
    del segments[index_of(segments, "BPR*")]
    error = refused(build(segments))
    assert error.segment_id == "TRN" and "BPR" in error.message


def test_empty_835_transaction_set_is_refused():
    segments = lines()
    start, end = index_of(segments, "ST*835"), index_of(segments, "SE*")
    segments[start + 1 : end] = []
    error = refused(build(segments))
    assert (error.segment, error.segment_id) == (start + 2, "SE") and "BPR" in error.message


def test_second_payer_is_refused():
    segments = lines()
    segments.insert(index_of(segments, "N1*PE"), "N1*PR*OTHER PAYER")
    error = refused(build(segments))
    assert error.segment_id == "N1" and "second payer" in error.message


def test_error_survives_pickling():
    error = X12Error("invalid amount '1.2.3'", segment=14, segment_id="CLP", position=812, element=4)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) == "segment 14 (CLP) at byte 812, element 4: invalid amount '1.2.3'"


# -- warnings ----------------------------------------------------------------------


def test_wrong_se_count_is_a_warning():
    segments = lines()
    at = index_of(segments, "SE*")
    count = int(segments[at].split("*")[1])
    segments[at] = f"SE*{count + 3}*0001"
    result = read_835(build(segments))
    assert result.claim_count == 2
    (warning,) = result.warnings
    assert (warning.code, warning.segment, warning.segment_id, warning.element) == ("se-count", at + 1, "SE", 1)
    assert str(warning).startswith(f"segment {at + 1} (SE) at byte ")


def test_envelope_control_mismatches_are_warnings():
    segments = lines()
    segments[index_of(segments, "IEA*")] = "IEA*1*000000002"
    segments[index_of(segments, "GE*")] = "GE*2*9"
    segments[index_of(segments, "SE*")] = segments[index_of(segments, "SE*")].replace("*0001", "*0002")
    result = read_835(build(segments))
    assert [w.code for w in result.warnings] == ["se-control", "ge-count", "ge-control", "iea-control"]


def test_invalid_claim_and_service_dates_are_warnings_and_kept_raw():
    segments = lines()
    segments[index_of(segments, "DTM*232")] = "DTM*232*20240231"
    segments[index_of(segments, "DTM*472")] = "DTM*472*2024010"
    result = read_835(build(segments))
    claim = next(result.iter_claims())
    assert claim.statement_from is None and claim.dates["232"] == "20240231"
    assert claim.services[0].service_date is None and claim.services[0].dates["472"] == "2024010"
    assert [w.code for w in claim.warnings] == ["invalid-date", "invalid-date"]


def test_unbalanced_claim_line_and_payment_are_warnings():
    segments = lines()
    at = index_of(segments, "CLP*C-1")
    segments[at] = segments[at].replace("*60.00*", "*61.00*")
    result = read_835(build(segments))
    assert [w.code for w in result.warnings] == ["claim-unbalanced", "transaction-unbalanced"]
    claim = next(result.iter_claims())
    assert claim.paid == D("61.00")  # never fixed


def test_unknown_segment_in_a_claim_is_a_warning():
    segments = lines()
    segments.insert(index_of(segments, "NM1*QC"), "ZZZ*1")
    result = read_835(build(segments))
    assert [w.code for w in result.warnings] == ["unexpected-segment", "se-count"]
    assert result.claim_count == 2


# -- content -------------------------------------------------------------------------


def test_skipped_837_transaction_set_is_counted():
    segments = lines()
    at = index_of(segments, "GE*")
    segments[at:at] = [
        "ST*837*0002*005010X222A1",
        "BHT*0019*00*1*20240101*1200*CH",
        "CLM*X1*100***11:B:1*Y*A*Y*Y",
        "SE*4*0002",
    ]
    segments[index_of(segments, "GE*")] = "GE*2*1"
    result = read_835(build(segments))
    assert result.skipped_transactions == 1 and result.warnings == []
    assert result.claim_count == 2 and len(result.transactions) == 1
    assert result.interchanges[0].groups[0].transaction_set_count == 2


def test_file_with_only_837_has_no_835_warning():
    segments = lines()
    start, end = index_of(segments, "ST*835"), index_of(segments, "SE*")
    segments[start : end + 1] = ["ST*837*0001", "BHT*0019*00*1*20240101*1200*CH", "SE*3*0001"]
    result = read_835(build(segments))
    assert result.transactions == [] and result.skipped_transactions == 1
    assert [w.code for w in result.warnings] == ["no-835"]


def test_plb_only_transaction_set():
    data = generate_835(plb=[("WO", "PCN123", "-50.00"), ("L6", "", "2.50")])
    result = read_835(data)
    assert result.warnings == []
    (tx,) = result.transactions
    assert tx.claims == [] and tx.claim_count == 0
    assert tx.total_paid == D("47.50") and tx.credit_debit == "C"
    assert [(p.code, p.reference, p.amount) for p in tx.plb] == [("WO", "PCN123", D("-50.00")), ("L6", "", D("2.50"))]


def test_plb_recoupment_larger_than_payments_is_a_debit():
    data = generate_835(specs=[ClaimSpec("C-9", charge="50", paid="20")], plb=[("WO", "PCN1", "80.00")])
    result = read_835(data)
    (tx,) = result.transactions
    assert tx.credit_debit == "D" and tx.total_paid == D("60.00") and tx.signed_total_paid == D("-60.00")
    assert result.warnings == []


def test_reversal_and_correction_with_negative_amounts_balance():
    specs = [
        ClaimSpec("R-1", status="22", charge="-310", paid="-210", payer_claim_number="PCN77"),
        ClaimSpec("R-1", status="1", charge="300", paid="200", payer_claim_number="PCN77"),
        ClaimSpec("R-2", status="22", charge="-100", paid="-80", patient_responsibility=[("3", "-20")]),
    ]
    result = read_835(generate_835(specs=specs))
    assert result.warnings == []
    reversal, _correction, other = result.iter_claims()
    assert reversal.is_reversal and reversal.paid == D("-210.00")
    assert [(a.group, a.amount) for a in reversal.all_adjustments()] == [("CO", D("-100.00"))]
    assert other.patient_responsibility == D("-20.00")
    assert result.transactions[0].total_paid == D("90.00")


def test_negative_adjustment_raises_payment():
    spec = ClaimSpec("N-1", charge="100", paid="110", other_adjustments=[("OA", "94", "-10")], service_line=False)
    result = read_835(generate_835(specs=[spec]))
    assert result.warnings == []
    claim = next(result.iter_claims())
    assert claim.services == [] and [(a.group, a.amount) for a in claim.adjustments] == [("OA", D("-10.00"))]


# -- streaming -----------------------------------------------------------------------


def test_iter_claims_matches_read_835():
    data = generate_835(claims=250, seed=3, claims_per_transaction=60, plb=[("WO", "X", "-1.00")])
    full = read_835(data)
    streamed = list(iter_claims(data))
    assert [c.claim_id for c in streamed] == [c.claim_id for c in full.iter_claims()]
    assert [c.paid for c in streamed] == [c.paid for c in full.iter_claims()]
    assert all(c.transaction.payer.name == "SETTLE TEST PAYER" for c in streamed)
    assert all(c.transaction.claims == [] for c in streamed)  # nothing kept
    assert streamed[0].transaction.trace_number == full.transactions[0].trace_number


def test_iter_transactions_yields_complete_transactions():
    data = generate_835(claims=25, claims_per_transaction=10)
    transactions = list(iter_transactions(data))
    assert [t.claim_count for t in transactions] == [10, 10, 5]
    assert [len(t.claims) for t in transactions] == [10, 10, 5]
    assert all(t.warnings == [] for t in transactions)


def test_streaming_raises_the_same_error():
    segments = lines()
    del segments[index_of(segments, "IEA*")]
    data = build(segments)
    with pytest.raises(X12Error) as info:
        list(iter_claims(data))
    assert info.value.position == len(data)


def test_result_totals_and_hash():
    data = generate_835(specs=SPECS)
    result = read_835(data, filename="era.835")
    assert result.filename == "era.835" and result.size == len(data)
    import hashlib

    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.total_paid == D("60.00")
