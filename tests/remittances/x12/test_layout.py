"""Delimiters and layout: BOM, line breaks, blank lines, indentation,
unpadded ISA, newline terminators, several interchanges, no envelope."""

from __future__ import annotations

from decimal import Decimal

import pytest

from remittances.x12 import ClaimSpec, X12Error, generate_835, read_835
from remittances.x12.tokenizer import Tokenizer

D = Decimal

SPECS = [
    ClaimSpec("C-1", charge="100.00", paid="60.00", patient_responsibility=[("2", "15.00")]),
    ClaimSpec("C-2", status="4", charge="250.00", paid="0", contractual_reason="50"),
    ClaimSpec("C-3", charge="75.50", paid="75.50"),
]


def summary(result):
    return [
        (c.claim_id, c.status_code, c.charge, c.paid, c.patient_responsibility, [s.code for s in c.services])
        for c in result.iter_claims()
    ]


BASE = read_835(generate_835(specs=SPECS))
EXPECTED = summary(BASE)


def test_generated_base_file_is_clean():
    assert BASE.warnings == [] and BASE.claim_count == 3
    assert EXPECTED[0] == ("C-1", "1", D("100.00"), D("60.00"), D("15.00"), ["99213"])


@pytest.mark.parametrize(
    "options",
    [
        {"bom": True},
        {"line_break": "\r\n"},
        {"line_break": "\n\n\r\n"},  # blank lines
        {"line_break": "\n    \t"},  # indentation
        {"line_break": ""},  # one line
        {"segment_terminator": "\n", "line_break": ""},
        {"segment_terminator": "\n", "line_break": "\n  "},  # blank lines with a newline terminator
        {"segment_terminator": "\r", "line_break": "\n"},  # CR terminator in a CRLF file
        {"element_separator": "|", "component_separator": "^", "repetition_separator": "{"},
        {"element_separator": "^", "component_separator": ">", "segment_terminator": "\x1d"},
        {"element_separator": "\x1f", "component_separator": "\x1e", "segment_terminator": "\x1c"},
    ],
)
def test_layouts_read_the_same_claims(options):
    result = read_835(generate_835(specs=SPECS, **options))
    assert summary(result) == EXPECTED
    assert [w.code for w in result.warnings] == []


def test_bom_counts_in_byte_offsets():
    data = generate_835(specs=SPECS, bom=True)
    result = read_835(data)
    assert result.interchanges[0].position == 3
    claim = next(result.iter_claims())
    assert data[claim.position : claim.position + 7] == b"CLP*C-1"


def test_crlf_and_indentation_positions_point_at_segment_ids():
    data = generate_835(specs=SPECS, line_break="\r\n      ")
    result = read_835(data)
    for claim in result.iter_claims():
        assert data[claim.position : claim.position + 4] == b"CLP*"
        for service in claim.services:
            assert data[service.position : service.position + 4] == b"SVC*"


def test_multibyte_utf8_keeps_byte_offsets_exact():
    data = generate_835(specs=SPECS, payer_name="SEGUROS MUÑOZ ÅSA")
    result = read_835(data)
    assert result.transactions[0].payer.name == "SEGUROS MUÑOZ ÅSA"
    positions = [c.position for c in result.iter_claims()]
    assert positions == [data.index(b"CLP*C-%d" % n) for n in (1, 2, 3)]


def test_latin1_file_is_read_with_a_warning_and_exact_offsets():
    data = generate_835(specs=SPECS, payer_name="MU\u00d1OZ").replace("MUÑOZ".encode(), b"MU\xd1OZ")
    result = read_835(data)
    assert result.transactions[0].payer.name == "MUÑOZ"
    assert [w.code for w in result.warnings] == ["encoding"]
    assert result.warnings[0].position == data.index(b"\xd1")
    assert next(result.iter_claims()).position == data.index(b"CLP*C-1")


def unpad_isa(data: bytes) -> bytes:
    isa, rest = data.split(b"~", 1)
    fields = isa.split(b"*")
    fields = [f.strip() or b" " if i in (2, 4, 6, 8) else f for i, f in enumerate(fields)]
    return b"*".join(fields) + b"~" + rest


def test_unpadded_isa_is_read_by_separators():
    data = unpad_isa(generate_835(specs=SPECS))
    assert data.index(b"~") < 105
    result = read_835(data)
    assert summary(result) == EXPECTED
    assert result.interchanges[0].sender_id == "SETTLEPAYER"
    assert [w.code for w in result.warnings] == ["isa-width"]


def test_segment_prefix_layout_matches_tilde_layout():
    plain = generate_835(specs=SPECS, element_separator="|", component_separator="^", line_break="")
    # rewrite as "...|^\n~GS|...\n~ST|..." like the TigerShark sample
    segments = plain.decode().split("~")[:-1]
    prefixed = ("\n~".join(segments) + "\n").encode()
    result = read_835(prefixed)
    assert summary(result) == EXPECTED
    assert result.interchanges[0].delimiters.segment_prefix == "~"
    assert [w.code for w in result.warnings] == ["segment-prefix"]


def test_segment_prefix_must_be_on_every_segment():
    plain = generate_835(specs=SPECS, element_separator="|", component_separator="^", line_break="")
    segments = plain.decode().split("~")[:-1]
    text = "\n~".join(segments) + "\n"
    text = text.replace("\n~NM1|QC", "\nNM1|QC", 1)
    with pytest.raises(X12Error) as info:
        read_835(text.encode())
    assert info.value.segment_id == "NM1" and "start with '~'" in info.value.message


def test_several_interchanges_with_their_own_delimiters():
    first = generate_835(specs=SPECS[:1], interchange_control_number=7)
    second = generate_835(
        specs=SPECS[1:],
        interchange_control_number=8,
        element_separator="|",
        component_separator="^",
        segment_terminator="\n",
        line_break="",
    )
    third = generate_835(specs=SPECS[:1], interchange_control_number=9, line_break="\r\n")
    result = read_835(first + b"\r\n" + second + third)
    assert [i.control_number for i in result.interchanges] == ["000000007", "000000008", "000000009"]
    assert [i.delimiters.element for i in result.interchanges] == ["*", "|", "*"]
    assert [c.claim_id for c in result.iter_claims()] == ["C-1", "C-2", "C-3", "C-1"]
    assert [t.interchange_control_number for t in result.transactions] == ["000000007", "000000008", "000000009"]
    assert [w.code for w in result.warnings] == []


def test_repeated_interchange_is_read_and_flagged_not_dropped():
    data = generate_835(specs=SPECS)
    result = read_835(data + data)
    assert result.claim_count == 6
    assert [w.code for w in result.warnings] == ["duplicate-interchange", "duplicate-trace"]


def test_file_without_envelope():
    data = generate_835(specs=SPECS, envelope=False)
    assert data.startswith(b"ST*835*")
    result = read_835(data)
    assert not result.enveloped and summary(result) == EXPECTED
    assert [w.code for w in result.warnings] == ["no-envelope"]


def test_file_without_envelope_and_newline_terminator():
    data = generate_835(specs=SPECS, envelope=False, segment_terminator="\n", line_break="")
    result = read_835(data)
    assert summary(result) == EXPECTED


def test_envelope_segment_in_a_file_without_envelope_is_refused():
    data = generate_835(specs=SPECS, envelope=False) + b"GE*1*1~\n"
    with pytest.raises(X12Error) as info:
        read_835(data)
    assert info.value.segment_id == "GE"


def test_tokenizer_segment_numbers_and_positions():
    data = b"\xef\xbb\xbf  " + generate_835(specs=SPECS[:1], line_break="\r\n")
    segments = list(Tokenizer(data))
    assert [s.number for s in segments] == list(range(1, len(segments) + 1))
    for segment in segments:
        assert data[segment.position : segment.position + len(segment.id)] == segment.id.encode()
    assert segments[0].id == "ISA" and len(segments[0].elements) == 17
    assert segments[0].elements[16] == ":"


def test_last_segment_without_terminator_is_a_warning():
    data = generate_835(specs=SPECS, line_break="").rstrip(b"~")
    result = read_835(data)
    assert result.claim_count == 3
    assert [w.code for w in result.warnings] == ["unterminated"]
    assert result.warnings[0].segment_id == "IEA"
