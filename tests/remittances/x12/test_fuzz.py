"""Corrupted real files never raise anything but X12Error."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remittances.x12 import ClaimSpec, X12Error, generate_835, iter_claims, read_835

from ._samples import sample_names, samples_dir

_CORPUS: list[bytes] = []


def corpus() -> list[bytes]:
    if not _CORPUS:
        for name in sample_names():
            _CORPUS.append((samples_dir() / name).read_bytes())
        _CORPUS.append(generate_835(claims=5, seed=7, plb=[("WO", "P1", "-3.00")]))
        _CORPUS.append(generate_835(specs=[ClaimSpec("R", status="22", charge="-5", paid="-5")], envelope=False))
    return _CORPUS


DELIMITERS = [b"~", b"*", b":", b"\n", b"\r\n", b"^", b"|", b">", b"~~", b"**", b"ISA*", b"ST*835*", b"SE*", b"\xef\xbb\xbf"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(data: bytes) -> None:
    try:
        result = read_835(data)
    except X12Error as error:
        assert isinstance(error.segment, int) and isinstance(error.position, int)
        assert 0 <= error.position <= len(data)
        str(error)
        return
    assert result.claim_count == len(list(result.iter_claims()))
    for warning in result.warnings:
        assert 0 <= warning.position <= len(data)
    # the streaming reader agrees
    assert len(list(iter_claims(data))) == result.claim_count


@st.composite
def base(draw) -> bytes:
    return draw(st.sampled_from(corpus()))


@FUZZ
@given(st.data())
def test_byte_flips(data):
    raw = bytearray(data.draw(base()))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    check(bytes(raw))


@FUZZ
@given(st.data())
def test_truncation(data):
    raw = data.draw(base())
    check(raw[: data.draw(st.integers(0, len(raw)))])


@FUZZ
@given(st.data())
def test_deletions(data):
    raw = data.draw(base())
    for _ in range(data.draw(st.integers(1, 4))):
        if not raw:
            break
        start = data.draw(st.integers(0, len(raw) - 1))
        length = data.draw(st.integers(1, 40))
        raw = raw[:start] + raw[start + length :]
    check(raw)


@FUZZ
@given(st.data())
def test_delimiter_insertions(data):
    raw = data.draw(base())
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.sampled_from(DELIMITERS)) + raw[at:]
    check(raw)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(raw):
    check(raw)


@FUZZ
@given(st.data())
def test_random_bytes_after_a_valid_isa(data):
    raw = generate_835(claims=1)
    check(raw[:106] + data.draw(st.binary(max_size=300)))
