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
    # tests/x12/_samples.py -> x12, tests, <repo>, <parent of repo> / shared/samples/835
    return Path(__file__).resolve().parents[3] / "shared" / "samples" / "835"


def sample_bytes(name: str) -> bytes:
    path = samples_dir() / name
    if not path.exists():
        pytest.skip(f"sample {path} not available (set SETTLE_SAMPLES_835)")
    return path.read_bytes()


def sample_names() -> list[str]:
    directory = samples_dir()
    if not directory.is_dir():
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
