"""The registry of exportable reports. A report is its columns and a function that yields its rows
(lazily: keyset batches of BATCH rows inside, so memory is bounded by a batch, never by the data);
the writers (reports/exports/writers.py) turn any of them into CSV, XLSX or PDF, from the
back-office, the API or a django-q2 task (reports/exports/jobs.py).

    register(ReportDef(name="aging", title="Credit-balance aging", columns=[...], takes=("as_of",),
                       rows=aging_rows, count=aging_count))

`rows(params)` yields tuples in column order: Decimal for money, date/datetime for dates, int, str
(never floats). A report may give its own PDF layout (`pdf`, the CMS-838 form does) and its own
summary lines printed under the title (`summary`)."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

from ledger.errors import InvalidInput, NotFound

BATCH = 2000

# what a column holds: how the writers format it (money: 2 places, right-aligned; dates: MM/DD/YYYY)
KINDS = ("text", "money", "date", "datetime", "int", "percent")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"
    width: int = 0  # the PDF's relative width (0: by kind)


@dataclass(frozen=True)
class ExportParams:
    practice_id: int
    date_from: date | None = None
    date_to: date | None = None
    as_of: date | None = None
    extra: dict = field(default_factory=dict)  # the report's own (run, report, part ...), validated by it

    def as_json(self) -> dict:
        return {"date_from": self.date_from.isoformat() if self.date_from else None,
                "date_to": self.date_to.isoformat() if self.date_to else None,
                "as_of": self.as_of.isoformat() if self.as_of else None, **self.extra}


@dataclass(frozen=True)
class ReportDef:
    name: str
    title: str
    columns: Sequence[Column]
    rows: Callable[[ExportParams], Iterator[Sequence]]
    takes: tuple[str, ...] = ()  # "period" (date_from/date_to), "as_of", and extra keys ("run", "report")
    count: Callable[[ExportParams], int] | None = None  # rows to come (for the progress bar)
    summary: Callable[[ExportParams], list[tuple[str, str]]] | None = None  # (label, value) lines
    pdf: Callable[..., None] | None = None  # own PDF layout: pdf(params, out: binary file, progress)
    validate: Callable[[ExportParams], ExportParams] | None = None  # checks the extra params; may fill them
    landscape: bool = True
    description: str = ""


REGISTRY: dict[str, ReportDef] = {}


def register(defn: ReportDef) -> ReportDef:
    REGISTRY[defn.name] = defn
    return defn


def get(name: str) -> ReportDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise NotFound(f"report {name!r} not found; known: {', '.join(sorted(REGISTRY))}") from None


def parse_params(defn: ReportDef, practice_id: int, raw: dict) -> ExportParams:
    """The params of a request (strings, as a form or JSON sends them) checked against what the report
    takes: dates as YYYY-MM-DD, from <= to, nothing it does not take. Raises InvalidInput naming the
    field."""
    known = {"date_from", "date_to", "as_of"} | set(defn.takes)
    unknown = sorted(k for k, v in raw.items() if k not in known and v not in (None, ""))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: the {defn.title.lower()} report takes no such parameter", field=unknown[0])

    def day(key: str) -> date | None:
        value = raw.get(key)
        if value in (None, ""):
            return None
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            raise InvalidInput(f"{key}: {value!r} is not a date (YYYY-MM-DD)", field=key) from None

    date_from, date_to, as_of = day("date_from"), day("date_to"), day("as_of")
    if "period" in defn.takes:
        if date_from is None or date_to is None:
            missing = "date_from" if date_from is None else "date_to"
            raise InvalidInput(f"{missing}: the {defn.title.lower()} report needs a period (from and to)",
                               field=missing)
        if date_to < date_from:
            raise InvalidInput(f"date_to: {date_to:%m/%d/%Y} is before date_from {date_from:%m/%d/%Y}",
                               field="date_to")
    elif date_from or date_to:
        raise InvalidInput(f"date_from: the {defn.title.lower()} report takes no period", field="date_from")
    if "as_of" not in defn.takes and as_of is not None:
        raise InvalidInput(f"as_of: the {defn.title.lower()} report takes no as-of date", field="as_of")
    extra = {k: raw[k] for k in defn.takes if k not in ("period", "as_of") and raw.get(k) not in (None, "")}
    params = ExportParams(practice_id=practice_id, date_from=date_from, date_to=date_to, as_of=as_of, extra=extra)
    return defn.validate(params) if defn.validate else params
