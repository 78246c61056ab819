"""Read X12 835 remittances into ``models`` objects.

Entry points:

* ``read_835(data)`` reads a whole file into a ``Remittance835File``.
* ``iter_transactions(data)`` yields each 835 transaction set as soon as its
  SE is read (claims included).
* ``iter_claims(data)`` yields claims one at a time without keeping them, so
  memory stays bounded even for one transaction set of 100,000 claims; each
  claim's ``transaction`` holds the payment header read so far.

All raise ``X12Error`` for a file that cannot be read exactly. The streaming
functions may have yielded objects before the error: a caller that must
refuse the whole file stages what it gets and discards it on error.

Structure rules (see docs/x12.md): envelope order is enforced
(ISA > GS > ST ... SE > GE > IEA); a missing SE/GE/IEA, a segment outside a
transaction set, an 835 without BPR as its first segment, a payer/payee (N1)
or TRN after the claims, a second payer or payee, an SVC/CAS outside a claim,
and any invalid number are errors. Wrong counts, control numbers that do not
match, invalid dates, unknown codes, a CLP without an LX loop and balancing
failures are warnings.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

from ledger.amounts import X12_MONEY_RE, AmountError, in_range, parse_x12_amount, parse_x12_number

from . import balancing
from .errors import X12Error, X12Warning
from .models import (
    ADJUSTMENT_GROUPS,
    CLAIM_STATUS,
    ZERO,
    Adjustment,
    Claim,
    Group,
    Interchange,
    Party,
    Person,
    PLBAdjustment,
    Remittance835File,
    ServiceLine,
    Transaction835,
)
from .tokenizer import Segment, Tokenizer

_ENVELOPE = frozenset({"ISA", "IEA", "GS", "GE", "ST"})
_money_match = X12_MONEY_RE.fullmatch
# a claim's stored adjustment sums can only leave the money range when one adjustment is this
# large or there are this many: only then are they added up (ledger/amounts.py MAX_AMOUNT)
_BIG_ADJUSTMENT = Decimal("1000000000")
_MANY_ADJUSTMENTS = 999
_KNOWN_VERSIONS = ("004010", "005010")
_PAD = [""] * 20

# reader states
_OUTSIDE, _INTERCHANGE, _GROUP, _TX835, _SKIP = range(5)
# areas inside an 835
_START, _HEADER, _PAYER, _PAYEE, _OTHER_PARTY, _DETAIL, _SUMMARY = range(7)
_HEADER_AREAS = (_HEADER, _PAYER, _PAYEE, _OTHER_PARTY)


def _digits(raw: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts other scripts and superscripts."""
    return raw.isascii() and raw.isdigit()


def parse_date8(raw: str) -> date | None:
    """CCYYMMDD -> date, or None when invalid."""
    if len(raw) != 8 or not _digits(raw):
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        return None


def parse_date6(raw: str) -> date | None:
    """YYMMDD (ISA09) -> date; years 00-69 are 20xx, 70-99 are 19xx."""
    if len(raw) != 6 or not _digits(raw):
        return None
    year = int(raw[:2])
    return parse_date8(("20" if year < 70 else "19") + raw)


def valid_time(raw: str) -> bool:
    """HHMM, HHMMSS or HHMMSSD(D)."""
    if len(raw) not in (4, 6, 7, 8) or not _digits(raw):
        return False
    return int(raw[:2]) < 24 and int(raw[2:4]) < 60 and (len(raw) == 4 or int(raw[4:6]) < 60)


class Reader835:
    """One pass over the segments of a file. Use ``read()``,
    ``transactions()`` or ``claims()`` once."""

    def __init__(
        self,
        data: bytes,
        *,
        filename: str = "",
        keep_claims: bool = True,
        keep_transactions: bool = True,
    ) -> None:
        self.filename = filename
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.size = len(data)
        self.tokenizer = Tokenizer(data)
        self.warnings: list[X12Warning] = self.tokenizer.warnings
        self.interchanges: list[Interchange] = []
        self.transaction_list: list[Transaction835] = []
        self.skipped_transactions = 0
        self.keep_claims = keep_claims
        self.keep_transactions = keep_transactions
        self._numbers: dict[str, Decimal] = {}  # money amounts read so far (checked), by their text
        self._quantities: dict[str, Decimal] = {}  # quantities (more decimals allowed), apart from money
        # the file's signed BPR02 and PLB sums are stored, so they must fit the money columns too
        self._file_paid = ZERO
        self._file_plb = ZERO
        self._last_plb: Segment | None = None
        self._adjustment_count = 0  # of the current claim (CAS triplets)
        self._big_adjustments = False
        self._dates: dict[str, date] = {}
        self._seen_interchanges: dict[str, int] = {}
        self._seen_traces: dict[tuple[str, str, str], int] = {}
        self._started = False
        # per-transaction state
        self._tx: Transaction835 | None = None
        self._claim: Claim | None = None
        self._service: ServiceLine | None = None
        self._party: Party | None = None
        self._area = _START
        self._lx = ""
        self._lx_seen = False
        self._missing_lx_warned = False
        self._bpr: Segment | None = None
        self._st: Segment | None = None
        self._version = ""
        self._done: list = []
        self._handlers = {
            "BPR": self._bpr_segment,
            "TRN": self._trn,
            "CUR": self._cur,
            "REF": self._ref,
            "DTM": self._dtm,
            "N1": self._n1,
            "N3": self._n3,
            "N4": self._n4,
            "PER": self._ignore,
            "RDM": self._ignore,
            "LX": self._lx_segment,
            "TS3": self._ts,
            "TS2": self._ts,
            "CLP": self._clp,
            "CAS": self._cas,
            "NM1": self._nm1,
            "MIA": self._claim_info,
            "MOA": self._claim_info,
            "AMT": self._amt,
            "QTY": self._qty,
            "SVC": self._svc,
            "LQ": self._lq,
            "PLB": self._plb,
        }

    # -- public ----------------------------------------------------------
    def read(self) -> Remittance835File:
        # The result is one large graph with reference cycles (claim <->
        # transaction); cyclic GC passes during its construction only cost
        # time (about a third of it for 10,000 claims), so pause them.
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in self._run():
                pass
        finally:
            if gc_enabled:
                gc.enable()
        return self.result()

    def transactions(self) -> Iterator[Transaction835]:
        for item in self._run():
            if type(item) is Transaction835:
                yield item

    def claims(self) -> Iterator[Claim]:
        for item in self._run():
            if type(item) is Claim:
                yield item

    def result(self) -> Remittance835File:
        return Remittance835File(
            filename=self.filename,
            sha256=self.sha256,
            size=self.size,
            interchanges=self.interchanges,
            transactions=self.transaction_list,
            warnings=self.warnings,
            skipped_transactions=self.skipped_transactions,
            enveloped=self.tokenizer.enveloped,
            segment_count=self.tokenizer.segment_count,
        )

    # -- helpers ---------------------------------------------------------------
    def _error(self, seg: Segment, message: str, element: int | None = None) -> X12Error:
        return X12Error(message, segment=seg.number, segment_id=seg.id, position=seg.position, element=element)

    def _warn(self, seg: Segment, message: str, code: str, element: int | None = None, *, claim: bool = False):
        warning = X12Warning(seg.number, seg.id, seg.position, message, code=code, element=element)
        self.warnings.append(warning)
        if self._tx is not None:
            self._tx.warnings.append(warning)
            if claim and self._claim is not None:
                self._claim.warnings.append(warning)
        return warning

    def _number(
        self, seg: Segment, index: int, what: str, *, required: bool = True, money: bool = True
    ) -> Decimal | None:
        elements = seg.elements
        raw = elements[index] if index < len(elements) else ""
        value = self._numbers.get(raw)
        if value is not None:
            return value
        return self._parse_number(seg, index, raw, what, required, money=money)

    def _parse_number(
        self, seg: Segment, index: int, raw: str, what: str, required: bool = True, *, money: bool = True
    ) -> Decimal | None:
        """An X12 "R" number through ledger/amounts.py: optional minus, ASCII
        digits, optional decimal point; no exponent, sign '+', spaces or
        thousands separators. Money (`money`) has at most two decimals and fits
        the money columns (|x| <= 999,999,999,999.99); quantities are not
        cached with the amounts, so a cached text is always a checked amount."""
        if not raw:
            if required:
                raise self._error(seg, f"missing {what}", index)
            return None
        if money:
            cache = self._numbers
            if _money_match(raw) is not None:  # the common case, inline: a valid amount
                value = Decimal(raw)
                if len(cache) > 50_000:
                    cache.clear()
                cache[raw] = value
                return value
        else:
            cache = self._quantities
            value = cache.get(raw)
            if value is not None:
                return value
        try:
            value = parse_x12_amount(raw) if money else parse_x12_number(raw)
        except AmountError as exc:
            detail = "" if exc.kind == "syntax" else f": {exc.reason}"  # range, fractions of a cent
            raise self._error(seg, f"invalid {what} {raw[:30]!r}{detail}", index) from None
        if len(cache) > 50_000:
            cache.clear()
        cache[raw] = value
        return value

    def _total_error(self, seg: Segment, what: str, value: Decimal) -> X12Error:
        return self._error(seg, f"{what} add up to {value}, more than an amount can be (999999999999.99 either way)")

    def _date(self, seg: Segment, index: int, what: str, *, claim: bool = False) -> date | None:
        elements = seg.elements
        raw = elements[index] if index < len(elements) else ""
        value = self._dates.get(raw)
        if value is not None or not raw:
            return value
        value = parse_date8(raw)
        if value is None:
            self._warn(seg, f"invalid {what} {raw[:20]!r}; kept as written", "invalid-date", index, claim=claim)
        else:
            if len(self._dates) > 50_000:
                self._dates.clear()
            self._dates[raw] = value
        return value

    # -- main loop ---------------------------------------------------------------
    def _run(self) -> Iterator[Claim | Transaction835]:
        if self._started:
            raise RuntimeError("a Reader835 reads its data once")
        self._started = True
        tokenizer = self.tokenizer
        handlers = self._handlers
        done = self._done
        state = _OUTSIDE
        interchange: Interchange | None = None
        group: Group | None = None
        skip_start: Segment | None = None
        last: Segment | None = None
        no_envelope = None
        expect_bpr = False
        for seg in tokenizer:
            last = seg
            sid = seg.id
            if state == _TX835:
                if sid in _ENVELOPE or sid == "SE":
                    if sid != "SE":
                        raise self._error(
                            seg,
                            f"SE missing for the transaction set started at segment {self._st.number} "
                            f"(ST*{self._st.get(1)}*{self._st.get(2)})",
                        )
                    self._end_transaction(seg, group)
                    state = _GROUP
                else:
                    if expect_bpr:
                        if sid != "BPR":
                            raise self._error(seg, "an 835 transaction set must begin with BPR after ST")
                        expect_bpr = False
                    handler = handlers.get(sid)
                    if handler is None:
                        self._unexpected(seg)
                    else:
                        handler(seg)
                if done:
                    yield from done
                    done.clear()
                continue
            if state == _SKIP:
                if sid == "SE":
                    self._check_se(seg, skip_start)
                    state = _GROUP
                elif sid in _ENVELOPE:
                    raise self._error(
                        seg,
                        f"SE missing for the transaction set started at segment {skip_start.number} "
                        f"(ST*{skip_start.get(1)}*{skip_start.get(2)})",
                    )
                continue
            if no_envelope is None:
                no_envelope = not tokenizer.enveloped
                if no_envelope:
                    interchange = Interchange(enveloped=False, segment=seg.number, position=seg.position)
                    group = Group(functional_id=None, segment=seg.number, position=seg.position)
                    interchange.groups.append(group)
                    self.interchanges.append(interchange)
                    state = _GROUP
            if no_envelope and sid in _ENVELOPE and sid != "ST":
                raise self._error(seg, f"{sid} in a file that has no ISA envelope")
            if sid == "ISA":
                if state != _OUTSIDE:
                    raise self._error(
                        seg,
                        f"IEA missing for the interchange started at segment {interchange.segment}",
                    )
                interchange = self._start_interchange(seg)
                state = _INTERCHANGE
            elif sid == "GS":
                if state != _INTERCHANGE:
                    raise self._error(seg, "GS outside an interchange" if state == _OUTSIDE else "GE missing before GS")
                group = self._start_group(seg, interchange)
                state = _GROUP
            elif sid == "ST":
                if state != _GROUP:
                    raise self._error(seg, "ST outside a functional group (GS)")
                group.transaction_set_count += 1
                if seg.get(1) == "835":
                    self._start_transaction(seg, interchange, group)
                    state = _TX835
                    expect_bpr = True
                else:
                    skip_start = seg
                    group.skipped_transactions += 1
                    self.skipped_transactions += 1
                    state = _SKIP
            elif sid == "GE":
                if state != _GROUP:
                    raise self._error(seg, "GE without GS")
                self._end_group(seg, group)
                state = _INTERCHANGE
            elif sid == "IEA":
                if state != _INTERCHANGE:
                    raise self._error(seg, "IEA without ISA" if state == _OUTSIDE else "GE missing before IEA")
                self._end_interchange(seg, interchange)
                state = _OUTSIDE
            elif sid == "TA1" and state == _INTERCHANGE:
                continue  # an interchange acknowledgment: nothing to read
            else:
                raise self._error(seg, f"{sid} segment outside a transaction set")
        if last is None:  # pragma: no cover - the tokenizer refuses empty files
            raise X12Error("file has no segments", position=self.size)
        end = self.size
        if state in (_TX835, _SKIP):
            start = self._st if state == _TX835 else skip_start
            raise X12Error(
                f"file ends without SE for the transaction set started at segment {start.number}",
                segment=last.number,
                segment_id=last.id,
                position=end,
            )
        if state == _GROUP and not no_envelope:
            raise X12Error(
                f"file ends without GE for the group started at segment {group.segment}",
                segment=last.number,
                segment_id=last.id,
                position=end,
            )
        if state == _INTERCHANGE:
            raise X12Error(
                f"file ends without IEA for the interchange started at segment {interchange.segment}",
                segment=last.number,
                segment_id=last.id,
                position=end,
            )
        for total, what in ((self._file_paid, "the file's payments (BPR02)"),
                            (self._file_plb, "the file's provider adjustments (PLB)")):
            if not in_range(total):
                raise X12Error(
                    f"{what} add up to {total}, more than an amount can be (999999999999.99 either way)",
                    segment=last.number,
                    segment_id=last.id,
                    position=last.position,
                )
        if not any(g.transaction_set_count - g.skipped_transactions for i in self.interchanges for g in i.groups):
            self.warnings.append(
                X12Warning(last.number, last.id, last.position, "file holds no 835 transaction set", code="no-835")
            )

    # -- envelope ----------------------------------------------------------------
    def _start_interchange(self, seg: Segment) -> Interchange:
        e = seg.elements
        interchange = Interchange(
            sender_qualifier=e[5],
            sender_id=e[6].strip(),
            receiver_qualifier=e[7],
            receiver_id=e[8].strip(),
            date=parse_date6(e[9]),
            date_raw=e[9],
            time_raw=e[10],
            control_number=e[13],
            version=e[12],
            usage_indicator=e[15],
            delimiters=seg.delimiters,
            segment=seg.number,
            position=seg.position,
        )
        if interchange.date is None:
            self._warn(seg, f"invalid interchange date ISA09 {e[9]!r}", "invalid-date", 9)
        if not valid_time(e[10]):
            self._warn(seg, f"invalid interchange time ISA10 {e[10]!r}", "invalid-time", 10)
        if not _digits(e[13]):
            self._warn(seg, f"interchange control number ISA13 {e[13]!r} is not numeric", "isa-control", 13)
        if e[12] not in ("00401", "00501"):
            self._warn(seg, f"unrecognised interchange version ISA12 {e[12]!r}", "version", 12)
        if e[15] not in ("P", "T", "I"):
            self._warn(seg, f"unknown usage indicator ISA15 {e[15]!r}", "usage-indicator", 15)
        key = f"{interchange.sender_qualifier}:{interchange.sender_id}:{e[13]}"
        first = self._seen_interchanges.get(key)
        if first is not None:
            self._warn(
                seg,
                f"interchange {e[13]} from {interchange.sender_id} repeats the one at segment {first}",
                "duplicate-interchange",
                13,
            )
        else:
            self._seen_interchanges[key] = seg.number
        self.interchanges.append(interchange)
        return interchange

    def _end_interchange(self, seg: Segment, interchange: Interchange) -> None:
        count = seg.get(1)
        if count != str(len(interchange.groups)):
            self._warn(
                seg,
                f"IEA01 says {count!r} groups, the interchange has {len(interchange.groups)}",
                "iea-count",
                1,
            )
        if seg.get(2) != interchange.control_number:
            self._warn(
                seg,
                f"IEA02 {seg.get(2)!r} does not match ISA13 {interchange.control_number!r} "
                f"(segment {interchange.segment})",
                "iea-control",
                2,
            )

    def _start_group(self, seg: Segment, interchange: Interchange) -> Group:
        group = Group(
            functional_id=seg.get(1),
            sender=seg.get(2),
            receiver=seg.get(3),
            date=parse_date8(seg.get(4)),
            date_raw=seg.get(4),
            time_raw=seg.get(5),
            control_number=seg.get(6),
            version=seg.get(8),
            segment=seg.number,
            position=seg.position,
        )
        if group.date is None:
            self._warn(seg, f"invalid group date GS04 {seg.get(4)!r}", "invalid-date", 4)
        if not valid_time(seg.get(5)):
            self._warn(seg, f"invalid group time GS05 {seg.get(5)!r}", "invalid-time", 5)
        if not group.version.startswith(_KNOWN_VERSIONS):
            self._warn(seg, f"unrecognised version GS08 {group.version!r}; read as 835", "version", 8)
        interchange.groups.append(group)
        return group

    def _end_group(self, seg: Segment, group: Group) -> None:
        count = seg.get(1)
        if count != str(group.transaction_set_count):
            self._warn(
                seg,
                f"GE01 says {count!r} transaction sets, the group has {group.transaction_set_count}",
                "ge-count",
                1,
            )
        if seg.get(2) != group.control_number:
            self._warn(
                seg,
                f"GE02 {seg.get(2)!r} does not match GS06 {group.control_number!r} (segment {group.segment})",
                "ge-control",
                2,
            )

    def _check_se(self, seg: Segment, st: Segment) -> int | None:
        counted = seg.number - st.number + 1
        declared_raw = seg.get(1)
        declared = int(declared_raw) if _digits(declared_raw) else None
        if declared != counted:
            self._warn(
                seg,
                f"SE01 says {declared_raw!r} segments, the transaction set has {counted}",
                "se-count",
                1,
            )
        if seg.get(2) != st.get(2):
            self._warn(seg, f"SE02 {seg.get(2)!r} does not match ST02 {st.get(2)!r}", "se-control", 2)
        return declared

    # -- transaction set ---------------------------------------------------------
    def _start_transaction(self, seg: Segment, interchange: Interchange, group: Group) -> None:
        if group.functional_id not in (None, "HP"):
            self._warn(seg, f"835 in a group whose GS01 is {group.functional_id!r}, not 'HP'", "gs-functional-id")
        implementation = seg.get(3) or group.version
        self._tx = Transaction835(
            control_number=seg.get(2),
            implementation=implementation,
            interchange_control_number=interchange.control_number,
            group_control_number=group.control_number,
            segment=seg.number,
            position=seg.position,
        )
        if seg.get(3) and group.version and seg.get(3) != group.version:
            self._warn(seg, f"ST03 {seg.get(3)!r} differs from GS08 {group.version!r}", "version", 3)
        self._version = implementation
        self._st = seg
        self._bpr = None
        self._claim = None
        self._service = None
        self._party = None
        self._area = _START
        self._lx = ""
        self._lx_seen = False
        self._missing_lx_warned = False

    def _end_transaction(self, seg: Segment, group: Group) -> None:
        if self._bpr is None:
            raise self._error(seg, "an 835 transaction set must begin with BPR after ST")
        self._close_claim()
        tx = self._tx
        tx.declared_segment_count = self._check_se(seg, self._st)
        tx.segment_count = seg.number - self._st.number + 1
        if tx.plb:
            plb_total = tx.plb_total
            if not in_range(plb_total):
                raise self._total_error(self._last_plb, "the provider adjustments (PLB) of this payment", plb_total)
            self._file_plb += plb_total
        if tx.payer is None:
            self._warn(seg, "835 transaction set has no payer (N1*PR)", "no-payer")
        if tx.payee is None:
            self._warn(seg, "835 transaction set has no payee (N1*PE)", "no-payee")
        if not tx.trace_number:
            self._warn(seg, "835 transaction set has no TRN check/EFT trace number", "no-trace")
        else:
            key = (tx.trace_payer_id, tx.trace_number, str(tx.total_paid))
            first = self._seen_traces.get(key)
            if first is not None:
                self._warn(
                    self._st,
                    f"payment {tx.trace_number} from {tx.trace_payer_id} repeats the transaction set "
                    f"at segment {first}",
                    "duplicate-trace",
                )
            else:
                self._seen_traces[key] = self._st.number
        for warning in balancing.transaction_warnings(
            tx, bpr_segment=self._bpr.number, bpr_position=self._bpr.position
        ):
            self.warnings.append(warning)
            tx.warnings.append(warning)
        if self.keep_transactions:
            group.transactions.append(tx)
            self.transaction_list.append(tx)
        self._done.append(tx)
        self._tx = None

    def _close_claim(self) -> None:
        claim = self._claim
        if claim is None:
            return
        if self._big_adjustments or self._adjustment_count >= _MANY_ADJUSTMENTS:
            self._check_adjustment_totals(claim)
        for warning in balancing.claim_warnings(claim):
            self.warnings.append(warning)
            self._tx.warnings.append(warning)
            claim.warnings.append(warning)
        self._done.append(claim)
        self._claim = None
        self._service = None

    def _check_adjustment_totals(self, claim: Claim) -> None:
        """A claim's PR and other adjustments are stored as two sums: each must fit."""
        pr = other = ZERO
        for adjustment in claim.all_adjustments():
            if adjustment.group == "PR":
                pr += adjustment.amount
            else:
                other += adjustment.amount
        for group, total in (("patient responsibility (PR)", pr), ("other", other)):
            if not in_range(total):
                raise X12Error(
                    f"claim {claim.claim_id[:30]!r}: its {group} adjustments (CAS) add up to {total}, more than "
                    "an amount can be (999999999999.99 either way)",
                    segment=claim.segment,
                    segment_id="CLP",
                    position=claim.position,
                )

    def _unexpected(self, seg: Segment) -> None:
        self._warn(seg, f"unexpected segment {seg.id} in an 835; ignored", "unexpected-segment", claim=True)

    def _out_of_order(self, seg: Segment) -> None:
        self._warn(seg, f"{seg.id} after the PLB provider adjustments; read in order", "out-of-order", claim=True)

    # header ---------------------------------------------------------------------
    def _bpr_segment(self, seg: Segment) -> None:
        if self._area != _START:
            raise self._error(seg, "BPR repeated in one transaction set")
        tx = self._tx
        tx.handling_code = seg.get(1)
        tx.total_paid = self._number(seg, 2, "total payment amount")
        tx.credit_debit = seg.get(3)
        self._file_paid += tx.signed_total_paid
        tx.payment_method = seg.get(4)
        tx.payment_format = seg.get(5)
        tx.payment_date_raw = seg.get(16)
        if tx.payment_date_raw:
            tx.payment_date = self._date(seg, 16, "payment date BPR16")
        else:
            self._warn(seg, "BPR16 payment date is missing", "invalid-date", 16)
        if tx.credit_debit not in ("C", "D"):
            self._warn(seg, f"BPR03 credit/debit flag {tx.credit_debit!r} is not C or D; read as credit", "bpr-flag", 3)
        self._bpr = seg
        self._area = _HEADER

    def _header_only(self, seg: Segment) -> None:
        if self._area not in _HEADER_AREAS:
            raise self._error(seg, f"{seg.id} after the claims: the payment header cannot change midway")

    def _trn(self, seg: Segment) -> None:
        self._header_only(seg)
        tx = self._tx
        if tx.trace_number:
            self._warn(seg, "TRN repeated; the first one is kept", "trn-repeated")
            return
        tx.trace_type = seg.get(1)
        tx.trace_number = seg.get(2)
        tx.trace_payer_id = seg.get(3)
        tx.trace_origin_supplemental = seg.get(4)
        if not tx.trace_number:
            self._warn(seg, "TRN02 check/EFT trace number is empty", "no-trace", 2)

    def _cur(self, seg: Segment) -> None:
        self._header_only(seg)
        self._tx.references.append(("CUR", seg.get(2)))

    def _ref(self, seg: Segment) -> None:
        elements = seg.elements
        pair = (elements[1], elements[2]) if len(elements) > 2 else (seg.get(1), "")
        if self._service is not None:
            self._service.references.append(pair)
        elif self._claim is not None:
            self._claim.references.append(pair)
        elif self._area in (_PAYER, _PAYEE):
            self._party.references.append(pair)
        elif self._area == _HEADER:
            self._tx.references.append(pair)
        elif self._area == _OTHER_PARTY:
            return
        else:
            self._warn(seg, "REF outside a header, party, claim or service line; kept on the transaction", "misplaced")
            self._tx.references.append(pair)

    def _dtm(self, seg: Segment) -> None:
        elements = seg.elements
        if len(elements) < 3:
            elements = elements + ["", ""]
        qualifier = elements[1]
        raw = elements[2]
        service = self._service
        if service is not None:
            service.dates[qualifier] = raw
            if qualifier == "472" or qualifier == "150" or qualifier == "151":
                value = self._date(seg, 2, f"service date DTM*{qualifier}", claim=True)
                if qualifier == "151":
                    service.service_date_end = value
                elif qualifier == "472" or service.service_date is None:
                    service.service_date = value
        elif self._claim is not None:
            claim = self._claim
            claim.dates[qualifier] = raw
            if qualifier in ("232", "233", "050"):
                value = self._date(seg, 2, f"claim date DTM*{qualifier}", claim=True)
                if qualifier == "232":
                    claim.statement_from = value
                elif qualifier == "233":
                    claim.statement_to = value
                elif qualifier == "050":
                    claim.received_date = value
        elif self._area == _HEADER:
            if qualifier == "405":
                self._tx.production_date = self._date(seg, 2, "production date DTM*405")
            self._tx.references.append(("DTM" + qualifier, raw))
        else:
            self._warn(seg, "DTM outside the header, a claim or a service line; ignored", "misplaced")

    def _n1(self, seg: Segment) -> None:
        if self._area not in _HEADER_AREAS:
            raise self._error(
                seg,
                f"N1*{seg.get(1)} after the claims: payer/payee loops must come before the claims, "
                "and the claims that follow could not be attributed to one payer",
            )
        qualifier = seg.get(1)
        party = Party(
            entity=qualifier,
            name=seg.get(2),
            id_qualifier=seg.get(3),
            id=seg.get(4),
            segment=seg.number,
            position=seg.position,
        )
        tx = self._tx
        if qualifier == "PR":
            if tx.payer is not None:
                raise self._error(seg, f"second payer N1*PR in one transaction set (first at segment {tx.payer.segment})")
            tx.payer = party
            self._area = _PAYER
        elif qualifier == "PE":
            if tx.payee is not None:
                raise self._error(seg, f"second payee N1*PE in one transaction set (first at segment {tx.payee.segment})")
            tx.payee = party
            self._area = _PAYEE
        else:
            self._warn(seg, f"unexpected N1 entity {qualifier!r}; loop ignored", "unexpected-segment", 1)
            self._area = _OTHER_PARTY
            party = None
        self._party = party

    def _n3(self, seg: Segment) -> None:
        if self._area in (_PAYER, _PAYEE):
            self._party.address.extend(v for v in seg.elements[1:3] if v)
        elif self._area != _OTHER_PARTY:
            self._warn(seg, "N3 outside a payer/payee loop; ignored", "misplaced")

    def _n4(self, seg: Segment) -> None:
        if self._area in (_PAYER, _PAYEE):
            party = self._party
            party.city, party.state, party.postal_code = seg.get(1), seg.get(2), seg.get(3)
        elif self._area != _OTHER_PARTY:
            self._warn(seg, "N4 outside a payer/payee loop; ignored", "misplaced")

    def _ignore(self, seg: Segment) -> None:
        """PER, RDM: contacts and delivery method, not needed for posting."""

    # detail ---------------------------------------------------------------------
    def _lx_segment(self, seg: Segment) -> None:
        self._close_claim()
        if self._area == _SUMMARY:
            self._out_of_order(seg)
        self._area = _DETAIL
        self._lx = seg.get(1)
        self._lx_seen = True

    def _ts(self, seg: Segment) -> None:
        if self._area != _DETAIL or self._claim is not None:
            self._warn(seg, f"{seg.id} outside the LX header loop; ignored", "misplaced")

    def _clp(self, seg: Segment) -> None:
        self._close_claim()
        out_of_order = self._area == _SUMMARY
        self._area = _DETAIL
        elements = seg.elements
        if len(elements) < 5:
            raise self._error(seg, f"CLP has {len(elements) - 1} elements; CLP01-CLP04 are required")
        if len(elements) < 10:
            elements = elements + _PAD[: 10 - len(elements)]
        claim_id = elements[1]
        status = elements[2]
        if not claim_id:
            raise self._error(seg, "CLP01 claim number is empty", 1)
        if not status:
            raise self._error(seg, "CLP02 claim status is empty", 2)
        numbers = self._numbers
        raw = elements[3]
        charge = numbers.get(raw)
        if charge is None:
            charge = self._parse_number(seg, 3, raw, "claim charge amount")
        raw = elements[4]
        paid = numbers.get(raw)
        if paid is None:
            paid = self._parse_number(seg, 4, raw, "claim payment amount")
        raw = elements[5]
        patient = numbers.get(raw)
        if patient is None:
            patient = self._parse_number(seg, 5, raw, "patient responsibility amount", False)
        tx = self._tx
        claim = Claim(
            claim_id=claim_id,
            status_code=status,
            charge=charge,
            paid=paid,
            patient_responsibility=ZERO if patient is None else patient,
            filing_indicator=elements[6],
            payer_claim_number=elements[7],
            facility_code=elements[8],
            frequency=elements[9],
            header_number=self._lx,
            segment=seg.number,
            position=seg.position,
            transaction=tx,
        )
        self._claim = claim
        self._service = None
        self._adjustment_count = 0
        self._big_adjustments = False
        tx.claim_count += 1
        tx.claims_charge_total += charge
        tx.claims_paid_total += paid
        if self.keep_claims:
            tx.claims.append(claim)
        if out_of_order:
            self._out_of_order(seg)
        elif not self._lx_seen and not self._missing_lx_warned:
            self._warn(
                seg, "claims without an LX header loop; read as claims of this payment", "missing-lx", claim=True
            )
            self._missing_lx_warned = True
        if status not in CLAIM_STATUS:
            self._warn(seg, f"unknown claim status CLP02 {status!r}", "claim-status", 2, claim=True)
        if not claim.payer_claim_number:
            self._warn(seg, "CLP07 payer claim control number is empty", "no-payer-claim-number", 7, claim=True)

    def _require_claim(self, seg: Segment) -> Claim:
        if self._claim is None:
            raise self._error(seg, f"{seg.id} outside a claim (no CLP before it)")
        return self._claim

    def _cas(self, seg: Segment) -> None:
        claim = self._claim
        if claim is None:
            raise self._error(seg, "CAS outside a claim (no CLP before it)")
        elements = seg.elements
        group = elements[1] if len(elements) > 1 else ""
        if not group:
            raise self._error(seg, "CAS01 adjustment group is empty", 1)
        if group not in ADJUSTMENT_GROUPS:
            self._warn(seg, f"unknown adjustment group {group!r}", "cas-group", 1, claim=True)
        elif group == "CR" and self._version.startswith("005010"):
            self._warn(seg, "adjustment group CR is not valid in 5010", "cas-group", 1, claim=True)
        target = self._service.adjustments if self._service is not None else claim.adjustments
        count = 0
        numbers = self._numbers
        size = len(elements)
        if size % 3 != 2:
            elements = elements + ["", ""]
        for index in range(2, size, 3):
            reason = elements[index]
            amount_raw = elements[index + 1]
            quantity_raw = elements[index + 2] if index + 2 < size else ""
            if not reason and not amount_raw and not quantity_raw:
                continue
            if not reason:
                raise self._error(seg, "adjustment amount without a reason code", index)
            amount = numbers.get(amount_raw)
            if amount is None:
                amount = self._parse_number(seg, index + 1, amount_raw, f"adjustment amount for reason {reason[:10]!r}")
            quantity = None
            if quantity_raw:
                quantity = numbers.get(quantity_raw)
                if quantity is None:
                    quantity = self._parse_number(seg, index + 2, quantity_raw, "adjustment quantity", money=False)
            target.append(Adjustment(group, reason, amount, quantity))
            count += 1
            if amount >= _BIG_ADJUSTMENT or amount <= -_BIG_ADJUSTMENT:
                self._big_adjustments = True
        if count == 0:
            raise self._error(seg, "CAS has no adjustment (reason and amount)", 2)
        self._adjustment_count += count
        if count > 6:
            self._warn(seg, f"CAS has {count} adjustments; at most 6 are allowed", "cas-count", claim=True)

    def _nm1(self, seg: Segment) -> None:
        claim = self._require_claim(seg)
        if self._service is not None:
            self._warn(seg, "NM1 after the service lines; read as part of the claim", "misplaced", claim=True)
        e = seg.elements
        if len(e) < 10:
            e = e + _PAD[: 10 - len(e)]
        person = Person(e[1], e[2], e[3], e[4], e[5], e[7], e[8], e[9])
        entity = person.entity
        if entity == "QC" and claim.patient is None:
            claim.patient = person
        elif entity == "74" and claim.corrected_patient is None:
            claim.corrected_patient = person
        elif entity == "IL" and claim.insured is None:
            claim.insured = person
        elif entity == "82" and claim.rendering_provider is None:
            claim.rendering_provider = person
        else:
            claim.other_names.append(person)

    def _claim_info(self, seg: Segment) -> None:
        """MIA, MOA: inpatient/outpatient adjudication details, not needed for posting."""
        self._require_claim(seg)

    def _amt(self, seg: Segment) -> None:
        elements = seg.elements
        if len(elements) < 3:
            elements = elements + ["", ""]
        raw = elements[2]
        amount = self._numbers.get(raw)
        if amount is None:
            amount = self._parse_number(seg, 2, raw, f"AMT*{elements[1][:5]} amount")
        if self._service is not None:
            self._service.amounts[elements[1]] = amount
        elif self._claim is not None:
            self._claim.amounts[elements[1]] = amount
        else:
            self._warn(seg, "AMT outside a claim; ignored", "misplaced")

    def _qty(self, seg: Segment) -> None:
        quantity = self._number(seg, 2, f"QTY*{seg.get(1)} quantity", money=False)
        claim = self._require_claim(seg)
        if self._service is None:
            claim.quantities[seg.get(1)] = quantity

    def _svc(self, seg: Segment) -> None:
        claim = self._require_claim(seg)
        elements = seg.elements
        procedure = elements[1] if len(elements) > 1 else ""
        if not procedure:
            raise self._error(seg, "SVC01 procedure is empty", 1)
        component = seg.delimiters.component
        parts = procedure.split(component)
        if len(parts) == 1:
            self._warn(
                seg,
                f"SVC01 {procedure[:30]!r} has no component separator {component!r}; the procedure code "
                "cannot be separated from its qualifier",
                "svc-composite",
                1,
                claim=True,
            )
        if len(elements) < 7:
            elements = elements + _PAD[: 7 - len(elements)]
        numbers = self._numbers
        raw = elements[2]
        charge = numbers.get(raw)
        if charge is None:
            charge = self._parse_number(seg, 2, raw, "line charge amount", False)
        raw = elements[3]
        paid = numbers.get(raw)
        if paid is None:
            paid = self._parse_number(seg, 3, raw, "line payment amount", False)
        if charge is None or paid is None:
            for index, what in ((2, "charge"), (3, "payment")):
                if not elements[index]:
                    self._warn(
                        seg, f"SVC{index:02d} line {what} is empty; read as 0", "svc-empty-amount", index, claim=True
                    )
        raw = elements[5]
        units = self._quantities.get(raw)
        if units is None:
            units = self._parse_number(seg, 5, raw, "units of service paid", False, money=False)
        service = ServiceLine(
            procedure,
            parts[0],
            parts[1] if len(parts) > 1 else "",
            parts[2:],
            ZERO if charge is None else charge,
            ZERO if paid is None else paid,
            elements[4],
            units,
            elements[6],
            segment=seg.number,
            position=seg.position,
        )
        claim.services.append(service)
        self._service = service

    def _lq(self, seg: Segment) -> None:
        if self._service is not None:
            self._service.remarks.append(seg.get(2))
        elif self._claim is not None:
            self._claim.remarks.append(seg.get(2))
        else:
            self._warn(seg, "LQ outside a claim; ignored", "misplaced")

    # summary --------------------------------------------------------------------
    def _plb(self, seg: Segment) -> None:
        self._close_claim()
        self._area = _SUMMARY
        elements = seg.elements
        provider = seg.get(1)
        fiscal = self._date(seg, 2, "PLB02 fiscal period date") if seg.get(2) else None
        component = seg.delimiters.component
        tx = self._tx
        count = 0
        for index in range(3, len(elements), 2):
            ident = elements[index]
            amount_raw = elements[index + 1] if index + 1 < len(elements) else ""
            if not ident and not amount_raw:
                continue
            if not ident:
                raise self._error(seg, "provider adjustment amount without an adjustment identifier", index)
            amount = self._number(seg, index + 1, "provider adjustment amount")
            code, _, reference = ident.partition(component)
            tx.plb.append(
                PLBAdjustment(
                    code=code,
                    reference=reference,
                    amount=amount,
                    provider_id=provider,
                    fiscal_period_date=fiscal,
                    segment=seg.number,
                    position=seg.position,
                )
            )
            count += 1
        if count == 0:
            raise self._error(seg, "PLB has no adjustment (identifier and amount)", 3)
        self._last_plb = seg
        if count > 6:
            self._warn(seg, f"PLB has {count} adjustments; at most 6 are allowed", "plb-count")


def read_835(data: bytes, *, filename: str = "") -> Remittance835File:
    """Read a whole 835 file. Raises X12Error when it cannot be read exactly."""
    return Reader835(data, filename=filename).read()


def iter_transactions(data: bytes, *, filename: str = "", keep_claims: bool = True) -> Iterator[Transaction835]:
    """Yield each 835 transaction set when its SE is read. Transactions are
    not kept by the reader; with ``keep_claims=False`` their ``claims`` list
    stays empty (counts and totals are still filled)."""
    return Reader835(data, filename=filename, keep_claims=keep_claims, keep_transactions=False).transactions()


def iter_claims(data: bytes, *, filename: str = "") -> Iterator[Claim]:
    """Yield claims one at a time, keeping none: bounded memory."""
    return Reader835(data, filename=filename, keep_claims=False, keep_transactions=False).claims()
