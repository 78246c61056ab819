"""Checks of a file staff attach to a case (issue 11 item 2), before anything is stored.

A file is accepted when it is 1 byte to SETTLE_CASE_DOCUMENT_MAX_BYTES (default 10 MiB) and its
content (not its name) is one of: PDF, PNG, JPEG, TIFF, or text (plain text, CSV, an X12 file such
as an 835) that decodes as UTF-8 and holds no NUL byte. The name must not claim another type (a PNG
named "scan.pdf" is refused, so is "notes.html"). The name is cleaned of folders and control
characters. Every refusal is an InvalidInput that names the file and the reason; nothing is read
beyond the size limit."""

import hashlib
import os
import unicodedata
from dataclasses import dataclass

from django.conf import settings

from ledger.errors import InvalidInput

# content type -> the first bytes that identify it
MAGIC = (
    ("application/pdf", (b"%PDF-",)),
    ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ("image/jpeg", (b"\xff\xd8\xff",)),
    ("image/tiff", (b"II*\x00", b"MM\x00*")),
)
# the file name extensions each type may carry ("" is a name without one)
EXTENSIONS = {
    "application/pdf": {".pdf"},
    "image/png": {".png"},
    "image/jpeg": {".jpg", ".jpeg", ".jpe"},
    "image/tiff": {".tif", ".tiff"},
    "text/plain": {"", ".txt", ".text", ".log", ".dat"},
    "text/csv": {".csv", ".tsv"},
    "application/edi-x12": {"", ".x12", ".edi", ".835", ".837", ".txt", ".dat", ".999", ".277", ".270", ".271"},
}
MAX_NAME = 255


@dataclass(frozen=True)
class CheckedUpload:
    """An accepted file: its cleaned name, the type its content shows, its bytes and their digest."""

    filename: str
    content_type: str
    size: int
    sha256: str
    content: bytes


def max_bytes() -> int:
    return int(getattr(settings, "SETTLE_CASE_DOCUMENT_MAX_BYTES", 10 * 1024 * 1024))


def clean_filename(name) -> str:
    """The last part of what the browser sent ("C:\\scans\\eob.pdf" -> "eob.pdf"), without control
    characters or leading dots, at most 255 characters (the extension kept)."""
    raw = str(name or "").replace("\\", "/").split("/")[-1]
    raw = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C")
    raw = raw.strip().lstrip(".").strip()
    if not raw:
        raw = "document"
    if len(raw) > MAX_NAME:
        stem, ext = os.path.splitext(raw)
        ext = ext[:20]
        raw = stem[: MAX_NAME - len(ext)] + ext
    return raw


def content_type_of(content: bytes, filename: str) -> str | None:
    """The type the content shows, or None when it is none of the accepted ones."""
    for content_type, signatures in MAGIC:
        if any(content.startswith(sig) for sig in signatures):
            return content_type
    if b"\x00" in content:
        return None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    head = text.lstrip()
    if head.startswith("ISA") and len(head) > 3 and not head[3].isalnum() and not head[3].isspace():
        return "application/edi-x12"  # an interchange header: ISA and its element separator
    if os.path.splitext(filename)[1].lower() in EXTENSIONS["text/csv"]:
        return "text/csv"
    return "text/plain"


def read_limited(upload, limit: int, filename: str) -> bytes:
    """The upload's bytes, refusing as soon as they pass `limit` (the declared size first)."""
    declared = getattr(upload, "size", None)
    if declared is not None and declared > limit:
        raise InvalidInput(f"{filename}: {declared} bytes is more than the {limit} bytes a case document may have",
                           field="upload", code="too_large")
    if hasattr(upload, "seek"):
        upload.seek(0)
    parts, total = [], 0
    chunks = upload.chunks() if hasattr(upload, "chunks") else iter(lambda: upload.read(64 * 1024), b"")
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise InvalidInput(f"{filename}: more than the {limit} bytes a case document may have",
                               field="upload", code="too_large")
        parts.append(chunk)
    return b"".join(parts)


def check_upload(upload) -> CheckedUpload:
    """Check an uploaded file (a Django UploadedFile or any file object with a name) for a case."""
    if upload is None or not hasattr(upload, "read"):
        raise InvalidInput("a file is required", field="upload")
    filename = clean_filename(getattr(upload, "name", ""))
    content = read_limited(upload, max_bytes(), filename)
    if not content:
        raise InvalidInput(f"{filename}: the file is empty", field="upload", code="empty")
    content_type = content_type_of(content, filename)
    if content_type is None:
        raise InvalidInput(f"{filename}: not an accepted type (PDF, PNG, JPEG, TIFF, or UTF-8 text, CSV or X12 "
                           f"without NUL bytes)", field="upload", code="wrong_type")
    ext = os.path.splitext(filename)[1].lower()
    if ext not in EXTENSIONS[content_type]:
        raise InvalidInput(f"{filename}: the content is {content_type} but the name ends in '{ext}'; rename it to "
                           f"what it is", field="upload", code="wrong_type")
    return CheckedUpload(filename=filename, content_type=content_type, size=len(content),
                         sha256=hashlib.sha256(content).hexdigest(), content=content)


def storage_name(checked: CheckedUpload) -> str:
    """The name the file is stored under: its digest and extension (never a caller's path)."""
    return checked.sha256[:32] + os.path.splitext(checked.filename)[1].lower()
