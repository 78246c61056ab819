"""Writing a registered report as CSV, XLSX or PDF, rows streamed from its generator so memory
stays bounded by a batch:

* CSV: the csv module; text cells that a spreadsheet would run as a formula get a leading quote
  (ledger/exports.py); money as plain 1234.56; dates YYYY-MM-DD (machine-readable).
* XLSX: openpyxl in write-only mode (rows go to the file as they come); money cells are numbers
  formatted #,##0.00, dates are dates.
* PDF: fpdf2 — pure Python, installs from pip alone, no system libraries (it was already the
  letters' library); a landscape table with the title, the practice, the parameters and the
  summary lines, the header row repeated on each page, money right-aligned, "Page n of m". The
  core fonts are Latin-1: other characters are replaced. A report with its own layout (the
  CMS-838 form) writes its PDF itself.

`progress(rows_done)` is called every BATCH rows."""

import csv
import io
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal

from fpdf import FPDF
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from ledger.exports import safe_text as safe_cell
from ledger.models import Practice
from reports.exports.base import BATCH, ExportParams, ReportDef

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "pdf": "application/pdf"}
FORMATS = tuple(CONTENT_TYPES)


def filename_for(defn: ReportDef, params: ExportParams, fmt: str) -> str:
    when = params.as_of or params.date_to or date.today()
    span = f"{params.date_from:%Y%m%d}-{params.date_to:%Y%m%d}" if params.date_from else f"{when:%Y%m%d}"
    extra = "".join(f"-{k}{v}" for k, v in sorted(params.extra.items()))
    return f"{defn.name.replace('_', '-')}-{span}{extra}.{fmt}"


def param_lines(params: ExportParams) -> list[tuple[str, str]]:
    out = []
    if params.date_from:
        out.append(("Period", f"{params.date_from:%m/%d/%Y} - {params.date_to:%m/%d/%Y}"))
    if params.as_of:
        out.append(("As of", f"{params.as_of:%m/%d/%Y}"))
    out.extend((k.replace("_", " ").capitalize(), str(v)) for k, v in sorted(params.extra.items()))
    return out


def _tick(progress, n):
    if progress and n % BATCH == 0:
        progress(n)


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (date, Decimal, int)):
        return str(value)
    return safe_cell(str(value))


def stream_csv(defn: ReportDef, params: ExportParams, progress=None) -> Iterator[str]:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([c.label for c in defn.columns])
    n = 0
    for row in defn.rows(params):
        w.writerow([_csv_value(v) for v in row])
        n += 1
        _tick(progress, n)
        if buf.tell() > 65536:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
    if progress:
        progress(n)


def write_csv(defn, params, out, progress=None) -> None:
    for chunk in stream_csv(defn, params, progress):
        out.write(chunk.encode("utf-8"))


XLSX_FORMATS = {"money": "#,##0.00", "date": "mm/dd/yyyy", "datetime": "mm/dd/yyyy hh:mm"}


def write_xlsx(defn, params, out, progress=None) -> None:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(defn.title[:31])
    bold = Font(bold=True)
    practice = Practice.objects.get(pk=params.practice_id)

    def text(value, font=None):
        cell = WriteOnlyCell(ws, value=value)
        if font:
            cell.font = font
        return cell

    ws.append([text(defn.title, Font(bold=True, size=14))])
    ws.append([text("Practice"), text(practice.name)])
    for label, value in param_lines(params) + (defn.summary(params) if defn.summary else []):
        ws.append([text(label), text(value)])
    ws.append([])
    ws.append([text(c.label, bold) for c in defn.columns])
    # only money and date cells carry a style (a WriteOnlyCell each); the others are plain values, which
    # openpyxl writes several times faster
    formats = [XLSX_FORMATS.get(c.kind) for c in defn.columns]
    n = 0
    for row in defn.rows(params):
        cells = []
        for fmt, value in zip(formats, row):
            if isinstance(value, str):
                cells.append(safe_cell(value))
                continue
            if isinstance(value, datetime):
                value = value.replace(tzinfo=None)
            if fmt is None or value is None:
                cells.append(value)
                continue
            cell = WriteOnlyCell(ws, value=value)
            cell.number_format = fmt
            cells.append(cell)
        ws.append(cells)
        n += 1
        _tick(progress, n)
    wb.save(out)
    if progress:
        progress(n)


def latin1(value) -> str:
    return str(value).encode("latin-1", "replace").decode("latin-1")


def pdf_cell(value, kind: str) -> str:
    if value is None:
        return ""
    if kind == "money" and isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, datetime):
        return f"{value:%m/%d/%Y %H:%M}"
    if isinstance(value, date):
        return f"{value:%m/%d/%Y}"
    if kind == "percent" and isinstance(value, Decimal):
        return f"{value * 100:.2f}%"
    return latin1(value)


WIDTH_BY_KIND = {"money": 1.0, "date": 0.9, "datetime": 1.2, "int": 0.6, "percent": 0.7, "text": 1.6}


class TablePDF(FPDF):
    def __init__(self, defn: ReportDef, practice: Practice, params: ExportParams):
        super().__init__(orientation="L" if defn.landscape else "P", unit="mm", format="Letter")
        self.defn, self.practice, self.params = defn, practice, params
        self.alias_nb_pages()
        self.set_auto_page_break(auto=True, margin=14)
        weights = [c.width or WIDTH_BY_KIND.get(c.kind, 1.0) for c in defn.columns]
        usable = self.w - self.l_margin - self.r_margin
        self.widths = [usable * w / sum(weights) for w in weights]

    def header(self):
        self.set_font("Helvetica", "B", 12)
        self.cell(0, 7, latin1(f"{self.defn.title} - {self.practice.name}"), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "", 8)
        if self.page_no() == 1:
            for label, value in param_lines(self.params) + (self.defn.summary(self.params) if self.defn.summary
                                                            else []):
                self.cell(0, 4.5, latin1(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
            self.ln(2)
        self.set_font("Helvetica", "B", 7)
        for col, w in zip(self.defn.columns, self.widths):
            self.cell(w, 5, latin1(col.label), border="B", align="R" if col.kind in ("money", "int") else "L")
        self.ln()
        self.set_font("Helvetica", "", 7)

    def footer(self):
        self.set_y(-10)
        self.set_font("Helvetica", "", 7)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")


def write_pdf(defn, params, out, progress=None) -> None:
    if defn.pdf is not None:
        defn.pdf(params, out, progress)
        return
    pdf = TablePDF(defn, Practice.objects.get(pk=params.practice_id), params)
    pdf.add_page()
    n = 0
    for row in defn.rows(params):
        for col, w, value in zip(defn.columns, pdf.widths, row):
            text = pdf_cell(value, col.kind)
            while text and pdf.get_string_width(text) > w - 1:
                text = text[:-1]
            pdf.cell(w, 4.5, text, align="R" if col.kind in ("money", "int") else "L")
        pdf.ln()
        n += 1
        _tick(progress, n)
    if n == 0:
        pdf.cell(0, 6, "Nothing to report.", new_x="LMARGIN", new_y="NEXT")
    out.write(bytes(pdf.output()))
    if progress:
        progress(n)


WRITERS: dict[str, Callable] = {"csv": write_csv, "xlsx": write_xlsx, "pdf": write_pdf}


def write(defn: ReportDef, params: ExportParams, fmt: str, out, progress=None) -> None:
    """Write the report in `fmt` to the binary file `out`."""
    WRITERS[fmt](defn, params, out, progress)
