"""Exports as django-q2 tasks: `export_start` checks the request and queues the job (after the
commit), `export_run` (the task) writes the file into storage with its progress, `export_open`
hands it to its practice's managers, `purge_export_files` (the retention job) removes old files and
marks their jobs expired. A job's row is only ever updated by itself (its own short transactions),
outside the lock order."""

import hashlib
import logging
import tempfile
from datetime import timedelta

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from ledger.access import ensure_staff
from ledger.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation, SettleError
from ledger.inputs import parse_id
from reports.exports.base import get, parse_params
from reports.exports.writers import CONTENT_TYPES, filename_for, write
from reports.models import ExportJob

log = logging.getLogger(__name__)

# a PDF is built in memory (fpdf2) and read by people: past this many rows, CSV or Excel (which stream)
PDF_MAX_ROWS = 20_000


def export_start(*, practice_id: int, report: str, format: str, params: dict, actor) -> ExportJob:  # noqa: A002
    """Queue an export of `report` in `format` ("csv", "xlsx", "pdf") for the practice's managers."""
    ensure_staff(actor, practice_id, manager=True)
    defn = get(report)
    if format not in CONTENT_TYPES:
        raise InvalidInput(f"format: {format!r} is not one of csv, xlsx, pdf", field="format")
    checked = parse_params(defn, practice_id, params or {})
    if format == "pdf" and defn.pdf is None and defn.count:
        rows = defn.count(checked)
        if rows > PDF_MAX_ROWS:
            raise InvalidInput(f"format: {rows:,} rows are too many for a PDF (at most {PDF_MAX_ROWS:,}, about "
                               f"{PDF_MAX_ROWS // 40:,} pages); export CSV or Excel, or a shorter period",
                               field="format")
    with transaction.atomic():
        job = ExportJob.objects.create(practice_id=practice_id, report=defn.name, format=format,
                                       params=checked.as_json(), created_by=actor,
                                       filename=filename_for(defn, checked, format))
        transaction.on_commit(lambda: async_task("reports.exports.jobs.export_run", job.pk))
    job.refresh_from_db()
    return job


def _set(job_id: int, **values) -> None:
    ExportJob.objects.filter(pk=job_id).update(**values)


def export_run(job_id: int) -> None:
    """The task: write the file, keeping rows_done current; done or failed with the error."""
    job = ExportJob.objects.filter(pk=job_id).first()
    if job is None or job.state != ExportJob.State.QUEUED:
        return
    job.start()
    job.save(update_fields=["state", "started_at"])
    defn = get(job.report)
    try:
        raw = {k: v for k, v in job.params.items() if v is not None}
        params = parse_params(defn, job.practice_id, raw)
        if defn.count:
            _set(job.pk, rows_total=defn.count(params))
        digest = hashlib.sha256()
        with tempfile.TemporaryFile() as tmp:
            write(defn, params, job.format, tmp, progress=lambda n: _set(job.pk, rows_done=n))
            tmp.seek(0)
            for chunk in iter(lambda: tmp.read(1 << 20), b""):
                digest.update(chunk)
            size = tmp.tell()
            tmp.seek(0)
            job.refresh_from_db()
            job.file.save(job.filename, File(tmp), save=False)
        job.size, job.sha256 = size, digest.hexdigest()
        job.finish()
        job.save(update_fields=["file", "size", "sha256", "state", "finished_at"])
    except Exception as exc:  # noqa: BLE001 - recorded on the job for the manager to see
        log.exception("export %s failed", job_id)
        job.refresh_from_db()
        if job.state in (ExportJob.State.QUEUED, ExportJob.State.RUNNING):
            job.fail(error=str(exc) if isinstance(exc, SettleError) else f"{type(exc).__name__}: {exc}")
            job.save(update_fields=["state", "finished_at", "error"])


def export_open(*, job, actor):
    """(file, filename, content type) of a finished export, for a manager of its practice."""
    jid = parse_id(job, field="job")
    found = ExportJob.objects.filter(pk=jid).first()
    if found is None:
        raise NotFound(f"export {jid} not found", field="job")
    try:
        ensure_staff(actor, found.practice_id)
    except PermissionDenied:
        raise NotFound(f"export {jid} not found", field="job") from None
    ensure_staff(actor, found.practice_id, manager=True)
    if found.state != ExportJob.State.DONE:
        raise RuleViolation(f"export {jid} is {found.get_state_display().lower()}: no file to download",
                            field="job")
    return found.file.open("rb"), found.filename, CONTENT_TYPES[found.format]


def purge_export_files(*, older_than_days: int) -> int:
    """Delete the files of exports finished more than `older_than_days` ago; their rows stay, expired."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    purged = 0
    for job in ExportJob.objects.filter(state__in=[ExportJob.State.DONE, ExportJob.State.FAILED],
                                        finished_at__lt=cutoff).order_by("pk").iterator():
        if job.file:
            default_storage.delete(job.file.name)
        job.expire()
        job.file = ""
        job.save(update_fields=["state", "file"])
        purged += 1
    return purged
