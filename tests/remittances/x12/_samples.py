"""Locating the shared 835 sample files and counting their CLP segments
independently of the reader."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest


def samples_dir() -> Path:
    override = os.environ.get("SETTLE_SAMPLES_835")
    if override:
        return Path(override)
    # tests/remittances/x12/_samples.py -> x12, remittances, tests, <repo>, <parent of repo> / shared/samples/835
    return Path(__file__).resolve().parents[4] / "shared" / "samples" / "835"


def missing(path: Path) -> None:
    """A sample that is not there: under CI (CI set) the run fails, since the real payers' files are
    part of what must pass; on a developer's machine without ../shared the test is skipped."""
    message = f"sample {path} not available (put shared/ beside the checkout, or set SETTLE_SAMPLES_835)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def sample_bytes(name: str) -> bytes:
    path = samples_dir() / name
    if not path.exists():
        missing(path)
    return path.read_bytes()


def sample_names() -> list[str]:
    directory = samples_dir()
    if not directory.is_dir():
        if os.environ.get("CI"):  # at collection: an error that fails the run, not zero tests
            raise FileNotFoundError(f"the 835 samples folder {directory} is missing (CI must run beside shared/)")
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != "SOURCES.md")


_SPLIT = re.compile(r"[~\n]")


def count_clp_segments(data: bytes) -> int:
    """CLP segments in a file, by a deliberately naive scan: split on the
    terminators used by the samples ('~' and newline), trim layout and a
    leading '~', and count pieces that start with CLP and a separator.
    Valid for the accepted samples, none of which holds non-835 sets."""
    text = data.decode("utf-8-sig")
    count = 0
    for piece in _SPLIT.split(text):
        piece = piece.strip().lstrip("~")
        if piece.startswith("CLP") and len(piece) > 3 and not piece[3].isalnum():
            count += 1
    return count
