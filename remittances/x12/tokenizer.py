"""Split X12 bytes into segments, with the delimiters each ISA declares.

Rules (see docs/x12.md):

* A UTF-8 byte-order mark is skipped (it still counts in byte offsets). The
  bytes are decoded as UTF-8, or as Latin-1 with a warning when they are not
  valid UTF-8 (every byte stays one character, so offsets stay exact).
* Only whitespace may come before the first ``ISA`` (or ``ST`` for a file
  without envelope).
* ``ISA`` is read by splitting on its element separator (the character right
  after ``ISA``) until 16 elements are found, so an unpadded ISA reads too.
  ISA16 is the component separator and the character right after it is the
  segment terminator. ISA11 is the repetition separator when it is not
  alphanumeric (5010); ``U`` (4010) means none. Each ISA in the file declares
  its own delimiters.
* A file that starts at ``ST`` has no envelope: the element separator is the
  character after ``ST``, the segment terminator the first character after
  ``ST01``/``ST02`` that is neither alphanumeric nor the element separator,
  and the component separator ``:`` (stated in a warning).
* Whitespace (space, tab, CR, LF) around a segment is layout, not data, unless
  it is itself a delimiter; blank lines and indentation are skipped. When the
  terminator is a line break, CR/LF pairs are handled the same way.
* Segment prefix: when the terminator is a line break and the line after the
  ISA starts with a punctuation character P (not a declared delimiter)
  followed by a letter, as in ``^\\n~GS|HP...``, the file was written with
  its terminator at the start of each following line. P is then a required
  prefix of every later segment of that interchange and is removed; a
  segment without it is an error. Nothing else is guessed.
* Segment identifiers must be 2-3 upper-case letters/digits starting with a
  letter. Control characters that are not declared delimiters are errors.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import X12Error, X12Warning

_LAYOUT_WS = " \t\r\n"
_PLAIN_BYTES = bytes(range(0x20, 0x7F)) + b"\t\r\n"
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SEGMENT_ID_RE = re.compile(r"[A-Z][A-Z0-9]{1,2}")
_CHUNK = 1 << 20  # characters split at a time
_ISA_FIXED_LENGTH = 105  # "ISA" + 16 separators + 16 elements, without the terminator (106 with it)
# ISA element positions whose length is fixed by the standard (structure checks).
_ISA_LENGTHS = {1: 2, 3: 2, 5: 2, 7: 2, 9: 6, 10: 4, 11: 1, 12: 5, 13: 9, 14: 1, 15: 1, 16: 1}


@dataclass(frozen=True, slots=True)
class Delimiters:
    element: str = "*"
    component: str = ":"
    segment: str = "~"
    repetition: str | None = None
    segment_prefix: str = ""


class Segment:
    """One segment: ``elements[0]`` is the identifier, so CLP04 is ``elements[4]``."""

    __slots__ = ("delimiters", "elements", "id", "number", "position")

    def __init__(self, elements: list[str], number: int, position: int, delimiters: Delimiters) -> None:
        self.id = elements[0]
        self.elements = elements
        self.number = number
        self.position = position
        self.delimiters = delimiters

    def get(self, index: int) -> str:
        """Element ``index`` (1-based as in X12), or "" when absent."""
        elements = self.elements
        return elements[index] if index < len(elements) else ""

    def __repr__(self) -> str:
        return f"Segment({self.number}, {self.position}, {self.delimiters.element.join(self.elements)!r})"


def _char_name(ch: str) -> str:
    return repr(ch) if ch.isprintable() else f"0x{ord(ch):02X}"


class Tokenizer:
    """Iterate over the segments of ``data``. Iterating raises X12Error on
    anything that cannot be tokenised exactly; layout oddities that do not
    change the reading go to ``warnings``."""

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("X12 data must be bytes")
        data = bytes(data)
        self.warnings: list[X12Warning] = []
        self.size = len(data)
        self.bom = 3 if data.startswith(codecs.BOM_UTF8) else 0
        body = data[self.bom :]
        try:
            self.text = body.decode("utf-8")
            self._single_byte = self.text.isascii()
        except UnicodeDecodeError as exc:
            self.text = body.decode("latin-1")
            self._single_byte = True
            self.warnings.append(
                X12Warning(
                    0,
                    "",
                    self.bom + exc.start,
                    "file is not valid UTF-8; read as Latin-1",
                    code="encoding",
                )
            )
        # control characters present (usually none): a C-speed pass over the
        # bytes first; the regex over the text only when something is left
        if body.translate(None, _PLAIN_BYTES):
            self._controls = frozenset(_CONTROL_RE.findall(self.text))
        else:
            self._controls = frozenset()
        self.enveloped = True
        self.segment_count = 0
        # byte offset bookkeeping for files with multi-byte characters
        self._char_cursor = 0
        self._byte_cursor = self.bom

    # -- offsets -----------------------------------------------------------
    def byte_offset(self, char_pos: int) -> int:
        """Byte offset in the original data of character ``char_pos`` of the text.
        Monotonic use is O(1) amortised; going backwards recounts."""
        if self._single_byte:
            return self.bom + char_pos
        if char_pos < self._char_cursor:
            self._char_cursor, self._byte_cursor = 0, self.bom
        self._byte_cursor += len(self.text[self._char_cursor : char_pos].encode("utf-8"))
        self._char_cursor = char_pos
        return self._byte_cursor

    def _error(self, message: str, char_pos: int, segment: int = 0, segment_id: str = "", element=None):
        return X12Error(
            message,
            segment=segment,
            segment_id=segment_id,
            position=self.byte_offset(min(char_pos, len(self.text))),
            element=element,
        )

    # -- envelope ------------------------------------------------------------
    def _parse_isa(self, p: int, number: int) -> tuple[Delimiters, list[str], int]:
        """Read the ISA starting at text position ``p``. Returns the
        delimiters, the ISA elements and the text position after its terminator."""
        text = self.text
        n = len(text)
        if p + 3 >= n:
            raise self._error("file ends inside the ISA segment", p, number, "ISA")
        sep = text[p + 3]
        if sep.isalnum() or sep in _LAYOUT_WS:
            raise self._error(f"invalid element separator {_char_name(sep)} after ISA", p, number, "ISA")
        q = p + 3
        for count in range(15):
            q = text.find(sep, q + 1)
            if q < 0:
                raise self._error(
                    f"ISA too short: file ends after {count + 1} of its 16 elements", p, number, "ISA"
                )
        # text[q] is the separator before ISA16; ISA16 is one character, the terminator follows it
        if q + 2 >= n:
            raise self._error("file ends inside the ISA segment (no segment terminator)", p, number, "ISA")
        component = text[q + 1]
        terminator = text[q + 2]
        elements = text[p : q + 2].split(sep)
        for index, length in _ISA_LENGTHS.items():
            if len(elements[index]) != length:
                raise self._error(
                    f"ISA{index:02d} {elements[index]!r} should be {length} characters; "
                    "the ISA is truncated or its delimiters are wrong",
                    p,
                    number,
                    "ISA",
                    element=index,
                )
        if terminator.isalnum() or terminator in " \t":
            raise self._error(
                f"invalid segment terminator {_char_name(terminator)} after ISA16", p, number, "ISA", element=16
            )
        if component.isalnum() or component in _LAYOUT_WS:
            raise self._error(
                f"invalid component separator {_char_name(component)} in ISA16", p, number, "ISA", element=16
            )
        if len({sep, component, terminator}) != 3:
            raise self._error(
                "element separator, component separator and segment terminator must differ",
                p,
                number,
                "ISA",
                element=16,
            )
        for index, value in enumerate(elements):
            m = _CONTROL_RE.search(value)
            if m and m.group() not in (sep, component, terminator):
                raise self._error(
                    f"control character {_char_name(m.group())} in the ISA", p, number, "ISA", element=index
                )
        repetition = elements[11]
        if repetition.isalnum() or repetition in _LAYOUT_WS:
            repetition = None
        elif repetition in (sep, component, terminator):
            self.warnings.append(
                X12Warning(
                    number,
                    "ISA",
                    self.byte_offset(p),
                    f"ISA11 repetition separator {_char_name(repetition)} repeats another delimiter; ignored",
                    code="isa-repetition",
                    element=11,
                )
            )
            repetition = None
        if q + 2 - p != _ISA_FIXED_LENGTH:
            self.warnings.append(
                X12Warning(
                    number,
                    "ISA",
                    self.byte_offset(p),
                    f"ISA is not fixed-width ({q + 2 - p} characters instead of {_ISA_FIXED_LENGTH}); "
                    "read by its separators",
                    code="isa-width",
                )
            )
        prefix = ""
        after = q + 3
        if terminator in "\r\n":
            k = after
            while k < n and text[k] in _LAYOUT_WS:
                k += 1
            if (
                k + 1 < n
                and not text[k].isalnum()
                and text[k] not in (sep, component, repetition)
                and text[k].isprintable()
                and text[k + 1].isalpha()
            ):
                prefix = text[k]
                self.warnings.append(
                    X12Warning(
                        number,
                        "ISA",
                        self.byte_offset(p),
                        f"segments after the ISA start with {prefix!r} and end with a line break; "
                        f"{prefix!r} read as part of the segment terminator",
                        code="segment-prefix",
                    )
                )
        return Delimiters(sep, component, terminator, repetition, prefix), elements, after

    def _detect_from_st(self, p: int) -> Delimiters:
        text = self.text
        n = len(text)
        if p + 2 >= n:
            raise self._error("file ends inside the first ST segment", p, 1, "ST")
        sep = text[p + 2]
        if sep.isalnum() or sep in _LAYOUT_WS:
            raise self._error(f"invalid element separator {_char_name(sep)} after ST", p, 1, "ST")
        q = p + 3
        while q < n and (text[q].isalnum() or text[q] == sep):
            q += 1
        if q >= n:
            raise self._error("no segment terminator after the first ST segment", p, 1, "ST")
        terminator = text[q]
        if terminator in " \t":
            raise self._error(f"invalid segment terminator {_char_name(terminator)} after ST", p, 1, "ST")
        component = ":"
        if component in (sep, terminator):
            raise self._error(
                "file without ISA uses ':' as a delimiter; the component separator cannot be known",
                p,
                1,
                "ST",
            )
        self.warnings.append(
            X12Warning(
                1,
                "ST",
                self.byte_offset(p),
                f"file has no ISA/GS envelope; delimiters taken from ST: element {_char_name(sep)}, "
                f"segment {_char_name(terminator)}, component ':' assumed",
                code="no-envelope",
            )
        )
        return Delimiters(sep, component, terminator, None, "")

    # -- segments ------------------------------------------------------------
    def __iter__(self) -> Iterator[Segment]:
        text = self.text
        n = len(text)
        pos = 0
        while pos < n and text[pos] in _LAYOUT_WS:
            pos += 1
        if pos >= n:
            raise self._error("file is empty", 0)
        number = 0
        if text.startswith("ISA", pos):
            number = 1
            isa_start = pos
            delims, elements, pos = self._parse_isa(pos, number)
            yield Segment(elements, number, self.byte_offset(isa_start), delims)
        elif text.startswith("ST", pos) and pos + 2 < n and not text[pos + 2].isalnum():
            self.enveloped = False
            delims = self._detect_from_st(pos)
        else:
            raise self._error(f"no ISA or ST at the start of the file (found {text[pos:pos + 3]!r})", pos)

        valid_ids: set[str] = set()
        byte_offset = self.byte_offset
        single_byte = self._single_byte
        bom = self.bom
        while True:  # once per set of delimiters (a later ISA may declare others)
            sep = delims.element
            term = delims.segment
            prefix = delims.segment_prefix
            ws = "".join(c for c in _LAYOUT_WS if c not in (sep, delims.component, delims.repetition))
            bad_re = None
            bad = self._controls - {sep, delims.component, term, delims.repetition}
            if bad:
                bad_re = re.compile("[" + re.escape("".join(sorted(bad))) + "]")
            new_delims = None
            # Split a window of about _CHUNK characters at a time: C-speed
            # splitting with bounded memory for very large files.
            while pos < n and new_delims is None:
                limit = pos + _CHUNK
                if limit >= n:
                    chunk_end = n
                else:
                    k = text.rfind(term, pos, limit)
                    if k < 0:
                        k = text.find(term, limit)
                    chunk_end = n if k < 0 else k + 1
                cur = pos
                for piece in text[pos:chunk_end].split(term):
                    start = cur
                    cur += len(piece) + 1
                    body = piece.strip(ws)
                    if not body:
                        continue
                    if body is not piece:  # something was stripped (strip returns the same object otherwise)
                        start += len(piece) - len(piece.lstrip(ws))
                    number += 1
                    if prefix:
                        if body[0] != prefix:
                            raise self._error(
                                f"segment does not start with {prefix!r} like the other segments "
                                "of this interchange",
                                start,
                                number,
                                body[:3],
                            )
                        body = body[1:]
                        start += 1
                    if bad_re is not None:
                        m = bad_re.search(body)
                        if m:
                            raise self._error(
                                f"control character {_char_name(m.group())} in segment",
                                start + m.start(),
                                number,
                                body.split(sep, 1)[0][:3],
                            )
                    elements = body.split(sep)
                    seg_id = elements[0]
                    if seg_id not in valid_ids or seg_id == "ISA":
                        if body.startswith("ISA") and len(body) > 3 and not body[3].isalnum():
                            # a new interchange: it declares its own delimiters
                            found, elements, after = self._parse_isa(start, number)
                            yield Segment(elements, number, byte_offset(start), found)
                            if found == delims and after == cur:
                                continue  # same delimiters: keep splitting this window
                            new_delims, pos = found, after
                            break
                        if not _SEGMENT_ID_RE.fullmatch(seg_id):
                            raise self._error(
                                f"invalid segment identifier {seg_id[:20]!r}", start, number, seg_id[:3]
                            )
                        if seg_id != "ISA":
                            valid_ids.add(seg_id)
                    yield Segment(elements, number, bom + start if single_byte else byte_offset(start), delims)
                    if cur > n:
                        self.warnings.append(
                            X12Warning(
                                number,
                                seg_id,
                                byte_offset(start),
                                "last segment has no segment terminator",
                                code="unterminated",
                            )
                        )
                else:
                    pos = chunk_end
            if new_delims is None:
                break
            delims = new_delims
        self.segment_count = number
