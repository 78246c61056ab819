"""One test per real sample file in shared/samples/835: each is either read
with every CLP accounted for, or refused naming the segment and position."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from remittances.x12 import X12Error, read_835

from ._samples import count_clp_segments, missing, sample_bytes, sample_names, samples_dir

D = Decimal

# file -> refused at (segment number, segment id), or None when it is read
OUTCOMES = {
    "pyx12__835_mult_loops_5010.txt": None,
    "pyx12__835_simple_4010_reversal_plb.txt": None,
    "pyx12__bad_header_looping_4010_MALFORMED.txt": (41, "N1"),
    "lfh-x12__medicare-part-a.835": None,
    "lfh-x12__managed-care.835": None,
    "lfh-x12__secondary-payment.835": None,
    "edi835parser__blue_cross_nc_sample_NO_ENVELOPE.txt": None,
    "edi835parser__emedny_sample.txt": None,
    "affect-edi835__nevada_medicaid_unpadded_isa.txt": None,
    "chs-edi835__test_no_LX.835": None,
    "oopfactory__835_4010_DeIdent_01.dat": None,
    "oopfactory__835_5010_WithMultipleInterchanges.txt": None,
    "tigershark__835-example-2_pipe.txt": None,
    "badx12__X221-multiple-claims-single-check.edi": None,
    "badx12__error_validation_MALFORMED.edi": None,
    "tastypackets__multi-line-not-delimited_NEWLINE_TERM.edi": None,
}


def read(name: str):
    data = sample_bytes(name)
    result = read_835(data, filename=name)
    assert result.claim_count == count_clp_segments(data)
    assert result.claim_count == len(list(result.iter_claims()))
    return result


def codes(result) -> list[str]:
    return [w.code for w in result.warnings]


@pytest.mark.parametrize("name", sample_names() or ["(no samples)"])
def test_every_sample_is_read_completely_or_refused_with_position(name):
    if name == "(no samples)":
        missing(samples_dir())  # fails under CI, skips on a machine without ../shared
    assert name in OUTCOMES, f"new sample {name}: add its expected outcome and a test"
    data = sample_bytes(name)
    expected = OUTCOMES[name]
    if expected is None:
        result = read_835(data, filename=name)
        assert result.claim_count == count_clp_segments(data)
        assert result.sha256 and result.size == len(data)
    else:
        with pytest.raises(X12Error) as info:
            read_835(data, filename=name)
        assert (info.value.segment, info.value.segment_id) == expected
        assert info.value.position > 0
        assert f"segment {expected[0]} ({expected[1]}) at byte {info.value.position}" in str(info.value)


def test_pyx12_mult_loops_5010_zero_pay_denied_claim():
    result = read("pyx12__835_mult_loops_5010.txt")
    assert result.warnings == []
    (tx,) = result.transactions
    assert (tx.handling_code, tx.total_paid, tx.credit_debit, tx.payment_method) == ("H", D("0"), "C", "NON")
    assert tx.payment_date == date(2004, 10, 28)
    assert tx.trace_number == "000000000" and tx.trace_payer_id == "1386000134"
    assert tx.payer.name == "PAYER" and tx.payee.id == "444313000"
    assert result.interchanges[0].delimiters.repetition == "^"
    (claim,) = tx.claims
    assert (claim.claim_id, claim.status_code, claim.charge, claim.paid) == ("2005555A", "4", D("915.39"), D("0"))
    assert claim.is_denied and claim.header_number == "1"
    assert claim.patient.last == "BACH" and claim.patient.id == "00001612"
    assert claim.rendering_provider.last == "PAYEE"
    assert [s.code for s in claim.services] == ["T1005"] * 3
    assert [a.group for a in claim.all_adjustments()] == ["CO", "OA", "OA"]
    assert claim.services[0].remarks == ["N14"]
    assert claim.services[0].service_date == date(2003, 11, 29)


def test_pyx12_4010_reversal_and_plb():
    result = read("pyx12__835_simple_4010_reversal_plb.txt")
    (tx,) = result.transactions
    assert tx.total_paid == D("5950.21")
    reversal, correction, second_reversal = tx.claims
    assert reversal.is_reversal and (reversal.charge, reversal.paid) == (D("-310"), D("-210"))
    assert reversal.services[0].charge == D("-310") and reversal.services[0].paid == D("-210")
    assert [(a.group, a.reason, a.amount) for a in reversal.adjustments + reversal.services[0].adjustments] == [
        ("CR", "45", D("-100"))
    ]
    assert correction.status_code == "1" and correction.payer_claim_number == reversal.payer_claim_number
    assert second_reversal.is_reversal and second_reversal.services[0].modifiers == ["TG"]
    assert [(p.code, p.reference, p.amount) for p in tx.plb] == [
        ("CS", "", D("-1008.1")),
        ("CS", "", D("24.21")),
        ("CS", "", D("5.95")),
    ]
    assert tx.plb[0].provider_id == "382999999" and tx.plb[0].fiscal_period_date == date(2009, 9, 30)
    # claims and lines balance (negative amounts included); the check does not:
    # -510.25 - (-977.94) = 467.69, not 5950.21
    assert codes(result) == ["transaction-unbalanced"]
    assert result.warnings[0].segment == 4 and "467.69" in result.warnings[0].message


def test_pyx12_bad_header_looping_is_refused_at_the_repeated_payer_loop():
    data = sample_bytes("pyx12__bad_header_looping_4010_MALFORMED.txt")
    with pytest.raises(X12Error) as info:
        read_835(data)
    error = info.value
    assert (error.segment, error.segment_id, error.position, error.element) == (41, "N1", 878, None)
    assert data[error.position : error.position + 8] == b"N1*PR*PA"
    assert "after the claims" in error.message


def test_lfh_medicare_part_a_plb_composite_balances():
    result = read("lfh-x12__medicare-part-a.835")
    assert result.warnings == []
    (tx,) = result.transactions
    assert tx.total_paid == D("150000.00") and tx.handling_code == "C"
    assert [(p.code, p.reference, p.amount) for p in tx.plb] == [("CV", "CP", D("-1.27"))]
    assert tx.claims_paid_total - tx.plb_total == tx.total_paid
    first, second = tx.claims
    assert (first.claim_id, first.charge, first.paid, first.filing_indicator) == (
        "666123",
        D("211366.97"),
        D("138018.40"),
        "MA",
    )
    assert (first.facility_code, first.frequency) == ("11", "1")
    assert first.statement_from == date(2002, 8, 16) and first.statement_to == date(2002, 8, 24)
    assert first.quantities == {"CA": D("8.00")} and first.services == []
    assert first.header_number == "110212" and second.header_number == "130212"
    assert result.interchanges[0].usage_indicator == "T"


def test_lfh_managed_care_invalid_payment_date_is_a_warning():
    result = read("lfh-x12__managed-care.835")
    (tx,) = result.transactions
    assert tx.total_paid == D("945.00") == tx.claims_paid_total
    assert tx.payment_date is None and tx.payment_date_raw == "20002316"
    assert [(w.code, w.segment, w.segment_id, w.element) for w in result.warnings] == [
        ("invalid-date", 4, "BPR", 16)
    ]
    first, second = tx.claims
    assert [(a.group, a.amount) for a in first.adjustments] == [("CO", D("50.00"))]
    assert [(a.group, a.amount) for a in first.services[0].adjustments] == [("PR", D("300.00"))]
    assert first.patient_responsibility == D("300.00") and second.patient_responsibility == D("600.00")
    assert tx.payee.id_qualifier == "XX" and tx.payee.references == [("TJ", "777667755")]


def test_lfh_secondary_payment_keeps_unsplittable_composite_with_warning():
    result = read("lfh-x12__secondary-payment.835")
    (tx,) = result.transactions
    first, second = tx.claims
    assert first.status_code == "2" and first.services == []
    assert [(a.group, a.reason, a.amount) for a in first.adjustments] == [("OA", "23", D("9411.64"))]
    line = second.services[1]
    assert line.procedure == "HC>66543>26" and line.code == ""  # ISA16 is ':'; not guessed
    assert [(a.group, a.reason, a.amount) for a in line.adjustments] == [
        ("PR", "1", D("150.00")),
        ("PR", "2", D("70.00")),
        ("CO", "42", D("85.00")),
    ]
    assert line.revenue_code == "220" and line.units == D("1.00")
    assert codes(result) == ["invalid-date", "svc-composite", "svc-composite"]
    # BPR16 is empty: the date was written in BPR15
    assert result.warnings[0].element == 16 and tx.payment_date is None
    assert tx.total_paid == tx.claims_paid_total == D("1222.00")


def test_edi835parser_blue_cross_without_envelope():
    result = read("edi835parser__blue_cross_nc_sample_NO_ENVELOPE.txt")
    assert not result.enveloped
    (interchange,) = result.interchanges
    assert not interchange.enveloped and interchange.control_number is None
    (tx,) = result.transactions
    assert tx.total_paid == D("1922.86") and tx.interchange_control_number is None
    (claim,) = tx.claims
    assert claim.claim_id == "200200964A52" and claim.received_date == date(2011, 1, 3)
    assert claim.patient.id == " YPB123456789001"  # kept as written
    assert [s.original_procedure for s in claim.services] == ["HC:59410", "HC:59410", ""]
    assert (claim.services[2].charge, claim.services[2].paid) == (D("0"), D("0"))
    assert codes(result) == ["no-envelope", "svc-empty-amount", "svc-empty-amount", "se-count"]


def test_edi835parser_emedny_corrected_names_and_line_denials():
    result = read("edi835parser__emedny_sample.txt")
    assert result.warnings == []
    (tx,) = result.transactions
    assert tx.total_paid == D("45.75")
    assert [c.claim_id for c in tx.claims] == ["PATIENT ACCOUNT NUMBER"] * 3
    assert [c.status_code for c in tx.claims] == ["1", "2", "2"]
    second = tx.claims[1]
    assert second.corrected_patient.last == "CORRECTED LAST"
    assert second.references == [("EA", "PATIENT ACCOUNT NUMBER")]
    assert [(a.group, a.reason) for a in second.all_adjustments()] == [("CO", "29"), ("CO", "29")]
    assert tx.claims[0].services[0].modifiers == ["RB"]


def test_affect_unpadded_isa_plb_only_transaction():
    result = read("affect-edi835__nevada_medicaid_unpadded_isa.txt")
    interchange = result.interchanges[0]
    assert (interchange.sender_id, interchange.receiver_id, interchange.control_number) == (
        "NVMED",
        "99999999",
        "100000300",
    )
    assert [t.claim_count for t in result.transactions] == [1, 2, 0]
    plb_only = result.transactions[2]
    assert plb_only.claims == [] and plb_only.total_paid == D("1812.27")
    assert [(p.code, p.amount) for p in plb_only.plb] == [
        ("CT", D("-1092.46")),
        ("CT", D("-719.81")),
        ("CS", D("-181.55")),
        ("CS", D("181.55")),
        ("CS", D("-130")),
        ("CS", D("130")),
    ]
    assert plb_only.plb[0].reference == "888888888"
    assert [c.claim_id for c in result.iter_claims()] == ["77777777", "77777778", "77777779"]
    assert result.transactions[0].claims[0].adjustments[0].quantity == D("0")
    assert codes(result) == ["isa-width", "iea-control"]
    assert result.warnings[1].segment == 67 and result.warnings[1].element == 2


def test_chs_claim_without_lx_is_read_not_dropped():
    result = read("chs-edi835__test_no_LX.835")
    (claim,) = result.transactions[0].claims
    assert claim.claim_id == "PATIENTACCOUNT01" and claim.header_number == ""
    assert claim.paid == D("1500.50") and len(claim.services) == 2
    # the payer repeated its line-level PR at claim level: reported, not fixed
    assert codes(result) == ["missing-lx", "claim-unbalanced", "claim-pr-mismatch", "se-count"]
    assert [w.segment for w in result.warnings] == [8, 8, 8, 18]
    assert claim.warnings == result.warnings[:3]


def test_oopfactory_4010_deidentified_production_file():
    result = read("oopfactory__835_4010_DeIdent_01.dat")
    claims = list(result.iter_claims())
    assert len(claims) == 96
    assert sum(c.is_reversal for c in claims) == 19
    assert all(c.charge < 0 for c in claims if c.is_reversal)
    assert any(a.group == "CR" for c in claims for a in c.all_adjustments())
    # digits were replaced by 9s: the versions are unknown and nothing balances
    assert {"version", "invalid-time", "claim-unbalanced", "transaction-unbalanced"} <= set(codes(result))
    assert "se-count" not in codes(result)


def test_oopfactory_5010_bom_and_three_interchanges():
    data = sample_bytes("oopfactory__835_5010_WithMultipleInterchanges.txt")
    assert data.startswith(b"\xef\xbb\xbf")
    result = read("oopfactory__835_5010_WithMultipleInterchanges.txt")
    assert [i.control_number for i in result.interchanges] == ["000000031", "000000032", "000000033"]
    assert result.interchanges[0].position == 3  # the BOM counts in byte offsets
    assert all(i.delimiters.component == ">" for i in result.interchanges)
    assert [t.total_paid for t in result.transactions] == [D("999.99"), D("9999.99"), D("482.13")]
    claims = list(result.iter_claims())
    assert len(claims) == 56 and sum(c.is_denied for c in claims) == 16
    assert claims[0].services[0].qualifier == "XX" and claims[0].services[0].code == "99999"
    interchange_starts = [i.position for i in result.interchanges]
    assert all(data[p : p + 3] == b"ISA" for p in interchange_starts)


def test_tigershark_pipe_and_leading_tilde_layout():
    result = read("tigershark__835-example-2_pipe.txt")
    delimiters = result.interchanges[0].delimiters
    assert (delimiters.element, delimiters.component, delimiters.segment, delimiters.segment_prefix) == (
        "|",
        "^",
        "\n",
        "~",
    )
    assert [t.control_number for t in result.transactions] == ["0001", "0002"]
    first, second = result.iter_claims()
    assert (first.claim_id, first.paid, first.services[0].code) == ("001-DDDDDDDDDD", D("200.02"), "88888")
    assert second.insured.last == "SMITH" and second.corrected_patient.middle == "A"
    assert codes(result) == ["segment-prefix", "se-count", "transaction-unbalanced", "se-count", "ge-count"]


def test_badx12_nine_claims_on_one_check_balance():
    result = read("badx12__X221-multiple-claims-single-check.edi")
    assert result.warnings == []
    (tx,) = result.transactions
    assert tx.claim_count == 9 and tx.total_paid == D("810.8") == tx.claims_paid_total
    assert sum(1 for c in tx.claims for _ in c.all_adjustments()) == 39
    assert {s.qualifier for c in tx.claims for s in c.services} == {"AD"}
    assert tx.claims[3].patient_responsibility == D("902") == tx.claims[3].adjustment_total_for("PR")


def test_badx12_error_validation_envelope_faults_are_warnings():
    result = read("badx12__error_validation_MALFORMED.edi")
    assert result.claim_count == 2 and result.transactions[0].total_paid == D("945")
    assert codes(result) == [
        "invalid-date",
        "gs-functional-id",
        "se-count",
        "se-control",
        "ge-count",
        "ge-control",
        "iea-count",
        "iea-control",
    ]
    by_code = {w.code: w for w in result.warnings}
    assert by_code["invalid-date"].segment_id == "GS" and by_code["invalid-date"].element == 4
    assert by_code["se-control"].segment == 29


def test_tastypackets_newline_terminator_reads_like_its_tilde_twin():
    # SOURCES.md says "identical to #11"; the tilde twin is in fact #8 (eMedNY)
    newline = read("tastypackets__multi-line-not-delimited_NEWLINE_TERM.edi")
    tilde = read("edi835parser__emedny_sample.txt")
    assert newline.interchanges[0].delimiters.segment == "\n"
    assert newline.warnings == [] and newline.claim_count == 3
    assert [claim_summary(c) for c in newline.iter_claims()] == [claim_summary(c) for c in tilde.iter_claims()]
    assert [c.segment for c in newline.iter_claims()] == [c.segment for c in tilde.iter_claims()]


def claim_summary(claim):
    return (
        claim.claim_id,
        claim.status_code,
        claim.charge,
        claim.paid,
        claim.patient_responsibility,
        claim.payer_claim_number,
        claim.patient,
        [(s.procedure, s.charge, s.paid, s.units, s.service_date, s.adjustments) for s in claim.services],
        claim.adjustments,
    )
