"""Documents kept with a case (issue 11 item 2): size- and type-checked by content, the name
cleaned, the digest stored, the same file once per case (the service and a unique index), every
refusal naming the file and the reason with nothing written."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, IntegrityError, transaction
from django.test import override_settings

from adjudication.documents import check_upload, clean_filename
from adjudication.models import CaseDocument, CaseEvent
from adjudication.services import cases as svc
from ledger.errors import Duplicate, InvalidInput, PermissionDenied
from tests.adjudication.test_cases import at_noon, other_practice_case, patient_case, written  # noqa: F401

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(20)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20)
TIFF = b"II*\x00\x08\x00\x00\x00" + bytes(20)
X12 = (b"ISA*00*          *00*          *ZZ*PAYER          *ZZ*CLINIC         *260324*1200*^*00501*000000001*0*P*:~"
       b"GS*HP*PAYER*CLINIC*20260324*1200*1*X*005010X221A1~")


def upload(name, content, content_type="application/octet-stream"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def test_a_pdf_is_stored_with_its_digest_and_an_event(world, at_noon):  # noqa: F811
    case = patient_case(world)
    doc = svc.case_attach_document(case=case, actor=world.clerk, reason="The patient's bank statement",
                                   upload=upload("statement.pdf", PDF, "text/html"))
    doc.refresh_from_db()
    assert (doc.filename, doc.content_type, doc.size) == ("statement.pdf", "application/pdf", len(PDF))
    assert doc.sha256 == hashlib.sha256(PDF).hexdigest()
    assert doc.uploaded_by == world.clerk and doc.case_id == case.pk
    with doc.file.open("rb") as f:
        assert f.read() == PDF
    assert "/" not in doc.file.name.removeprefix("cases/").split("/", 2)[-1]
    ev = doc.event
    assert (ev.kind, ev.case_id, ev.actor) == (CaseEvent.Kind.DOCUMENT, case.pk, world.clerk)
    assert ev.data["sha256"] == doc.sha256 and ev.data["reason"] == "The patient's bank statement"


@pytest.mark.parametrize("name, content, expected", [
    ("eob.png", PNG, "image/png"),
    ("photo.JPG", JPEG, "image/jpeg"),
    ("fax.tif", TIFF, "image/tiff"),
    ("notes.txt", "Café: patient paid twice\n".encode(), "text/plain"),
    ("export.csv", b"date,amount\n2026-03-24,180.00\n", "text/csv"),
    ("remit.835", X12, "application/edi-x12"),
    ("remit.txt", X12, "application/edi-x12"),
])
def test_accepted_types_by_content(name, content, expected):
    assert check_upload(upload(name, content)).content_type == expected


@pytest.mark.parametrize("name, content, message", [
    ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00" + bytes(40), "setup.exe: not an accepted type"),
    ("notes.txt", b"hello\x00world", "notes.txt: not an accepted type"),
    ("latin.txt", "Caf\xe9".encode("latin-1"), "latin.txt: not an accepted type"),
    ("scan.pdf", PNG, "scan.pdf: the content is image/png but the name ends in '.pdf'"),
    ("page.html", b"<html><script>alert(1)</script></html>", "page.html: the content is text/plain"),
    ("empty.pdf", b"", "empty.pdf: the file is empty"),
])
def test_refused_files_name_the_file_and_write_nothing(world, at_noon, name, content, message):  # noqa: F811
    case = patient_case(world)
    before = written(case)
    with pytest.raises(InvalidInput, match=message):
        svc.case_attach_document(case=case, actor=world.clerk, reason="Attach", upload=upload(name, content))
    assert written(case) == before
    assert not CaseDocument.objects.filter(case=case).exists()


def test_too_big_is_refused(world, at_noon):  # noqa: F811
    case = patient_case(world)
    with override_settings(SETTLE_CASE_DOCUMENT_MAX_BYTES=1024):
        with pytest.raises(InvalidInput, match=r"big\.pdf: 1025 bytes is more than the 1024 bytes") as err:
            svc.case_attach_document(case=case, actor=world.clerk, reason="Attach",
                                     upload=upload("big.pdf", PDF + b"x" * (1025 - len(PDF))))
        assert err.value.code == "too_large"
        exact = PDF + b"x" * (1024 - len(PDF))
        doc = svc.case_attach_document(case=case, actor=world.clerk, reason="Attach",
                                       upload=upload("exact.pdf", exact))
    assert doc.size == 1024
    assert CaseDocument.objects.filter(case=case).count() == 1


def test_the_default_limit_is_ten_mebibytes(world, at_noon):  # noqa: F811
    case = patient_case(world)
    big = PDF + b"0" * (10 * 1024 * 1024 + 1 - len(PDF))
    with pytest.raises(InvalidInput, match="more than the 10485760 bytes"):
        svc.case_attach_document(case=case, actor=world.clerk, reason="Attach", upload=upload("big.pdf", big))


class Undeclared:
    """A file object that does not say its size (a stream): the limit is kept while reading."""

    def __init__(self, name, content):
        self.name, self._content, self._at = name, content, 0

    def read(self, n=-1):
        out = self._content[self._at:] if n < 0 else self._content[self._at:self._at + n]
        self._at += len(out)
        return out


def test_too_big_is_refused_while_reading_when_the_size_is_not_declared():
    with override_settings(SETTLE_CASE_DOCUMENT_MAX_BYTES=100):
        with pytest.raises(InvalidInput, match="stream.pdf: more than the 100 bytes"):
            check_upload(Undeclared("stream.pdf", PDF + b"x" * 200))
        assert check_upload(Undeclared("stream.pdf", PDF)).size == len(PDF)


def test_the_same_file_twice_on_one_case_is_a_duplicate(world, at_noon):  # noqa: F811
    case = patient_case(world)
    first = svc.case_attach_document(case=case, actor=world.clerk, reason="EOB", upload=upload("eob.pdf", PDF))
    before = written(case)
    with pytest.raises(Duplicate, match=f"again.pdf: the same file is already on case {case.pk} \\(as eob.pdf"):
        svc.case_attach_document(case=case, actor=world.clerk, reason="EOB", upload=upload("again.pdf", PDF))
    assert written(case) == before
    other = patient_case(world)
    second = svc.case_attach_document(case=other, actor=world.clerk, reason="EOB", upload=upload("eob.pdf", PDF))
    assert second.sha256 == first.sha256 and second.case_id != first.case_id


def test_the_database_refuses_a_second_row_for_the_same_file(world, at_noon):  # noqa: F811
    case = patient_case(world)
    doc = svc.case_attach_document(case=case, actor=world.clerk, reason="EOB", upload=upload("eob.pdf", PDF))
    ev = svc.case_note(case=case, actor=world.clerk, text="again")
    with pytest.raises(IntegrityError, match="case_document_once_per_case"), transaction.atomic():
        CaseDocument.objects.create(case=case, event=ev, file=doc.file.name, filename="x.pdf",
                                    content_type="application/pdf", size=doc.size, sha256=doc.sha256,
                                    uploaded_by=world.clerk)


@pytest.mark.parametrize("raw, clean", [
    ("C:\\Users\\kim\\Desktop\\eob.pdf", "eob.pdf"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("  .hidden.pdf ", "hidden.pdf"),
    ("line\nbreak\x00.pdf", "linebreak.pdf"),
    ("", "document"),
    ("a" * 300 + ".pdf", "a" * 251 + ".pdf"),
])
def test_names_are_cleaned(raw, clean):
    assert clean_filename(raw) == clean


def test_a_path_in_the_name_is_not_where_it_is_stored(world, at_noon):  # noqa: F811
    case = patient_case(world)
    doc = svc.case_attach_document(case=case, actor=world.clerk, reason="EOB",
                                   upload=upload("../../../settle/config/settings.txt", b"plain text"))
    assert doc.filename == "settings.txt"
    assert doc.file.name.startswith("cases/") and ".." not in doc.file.name
    assert doc.sha256[:32] in doc.file.name


def test_another_practices_case_refuses_the_upload(world, at_noon):  # noqa: F811
    theirs = other_practice_case(world)
    with pytest.raises(PermissionDenied):
        svc.case_attach_document(case=theirs, actor=world.clerk, reason="EOB", upload=upload("eob.pdf", PDF))
    assert not CaseDocument.objects.filter(case=theirs).exists()


def test_documents_are_append_only(world, at_noon):  # noqa: F811
    case = patient_case(world)
    doc = svc.case_attach_document(case=case, actor=world.clerk, reason="EOB", upload=upload("eob.pdf", PDF))
    with pytest.raises(DatabaseError, match="DELETE on adjudication_casedocument is not allowed"), transaction.atomic():
        CaseDocument.objects.filter(pk=doc.pk).delete()
    assert CaseDocument.objects.filter(pk=doc.pk).exists()
