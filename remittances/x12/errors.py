"""Errors and warnings of the X12 reader.

An ``X12Error`` means the file cannot be read exactly: the caller refuses the
whole file. An ``X12Warning`` records a fault that does not prevent exact
reading (a wrong count, an invalid date, an amount that does not balance); it
is never a silent fix and is shown to staff with the rest of the file.
"""

from __future__ import annotations

from dataclasses import dataclass


class X12Error(Exception):
    """The file cannot be read; names the segment and byte offset of the problem.

    ``segment`` is the 1-based ordinal of the segment in the file (0 when the
    problem is before the first segment), ``position`` the byte offset in the
    original bytes (a UTF-8 byte-order mark counts), ``element`` the element
    position inside the segment (CLP04 -> 4) or None.
    """

    def __init__(
        self,
        message: str,
        *,
        segment: int = 0,
        segment_id: str = "",
        position: int = 0,
        element: int | None = None,
    ) -> None:
        self.message = message
        self.segment = segment
        self.segment_id = segment_id
        self.position = position
        self.element = element
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{_where(self.segment, self.segment_id, self.position, self.element)}: {self.message}"

    def __reduce__(self):  # keep the keyword-only attributes through pickling
        return (
            _rebuild_error,
            (self.message, self.segment, self.segment_id, self.position, self.element),
        )


def _rebuild_error(message, segment, segment_id, position, element) -> X12Error:
    return X12Error(message, segment=segment, segment_id=segment_id, position=position, element=element)


@dataclass(frozen=True, slots=True)
class X12Warning:
    """A recorded fault that did not prevent exact reading.

    ``code`` is a short stable kind ("se-count", "claim-unbalanced", ...) for
    programs and tests; ``message`` is for people.
    """

    segment: int
    segment_id: str
    position: int
    message: str
    code: str = "warning"
    element: int | None = None

    def __str__(self) -> str:
        return f"{_where(self.segment, self.segment_id, self.position, self.element)}: {self.message}"


def _where(segment: int, segment_id: str, position: int, element: int | None) -> str:
    if segment:
        text = f"segment {segment} ({segment_id}) at byte {position}"
    else:
        text = f"byte {position}"
    if element is not None:
        text += f", element {element}"
    return text
