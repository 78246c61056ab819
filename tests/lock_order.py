"""The lock-order recorder behind the autouse fixture `lock_order_recorder` (tests/conftest.py).

It watches every SQL statement of every connection (the test's own, and those threads open in
race tests) and checks the row locks each transaction takes against ledger.locks.ORDER:

* a locking SELECT (FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE) locks the tables named by its
  OF clause, or without one every table of its top-level FROM clause (subqueries lock nothing);
* an UPDATE or DELETE of a table in ORDER that the transaction has not locked, updated or inserted
  into yet takes its rows' locks right there, so it counts as a lock of that table (the nightly
  run's and the 835 posting's set-based writes); once a table is held, writing it again is fine;
* within one transaction the ranks must not go down: re-locking the same kind is fine, a kind
  before one already held is a violation. A table outside ORDER (API tokens, the sandbox
  processor's charges, users) is locked alone: a transaction that locks one locks nothing else.

"One transaction" is the outermost atomic block of the code under test: pytest-django wraps each
`django_db` test in its own atomic blocks (marked `_from_testcase`), so the record starts when
the first block that is not the test case's opens (a service's durable block, the posting's batch
block, a test's own `transaction.atomic()`) and ends when that block exits. Statements outside any
such block run in autocommit, one transaction each, and are checked alone.

A violation raises LockOrderViolation at the statement (before it runs) and is also kept in
`violations`, so a violation inside a thread that swallows exceptions still fails the test at
teardown. A test that provokes one on purpose removes it from `violations` after catching it."""

import re
import threading
import traceback
from dataclasses import dataclass, field

from django.db import connections, transaction
from django.db.backends.signals import connection_created

from ledger.locks import ORDER, lock_rank_of_table

ORDER_TEXT = " -> ".join(label.split(".")[1] for _, label, _ in ORDER)

LOCKING = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b(?:\s+OF\s+(?P<of>[\w\s\",.]+?))?"
                     r"(?:\s+NOWAIT|\s+SKIP\s+LOCKED)?\s*;?\s*$", re.IGNORECASE | re.DOTALL)
FROM = re.compile(r"\bFROM\s+(?P<items>.+?)(?=\bWHERE\b|\bGROUP\s+BY\b|\bORDER\s+BY\b|\bHAVING\b|\bWINDOW\b|"
                  r"\bLIMIT\b|\bOFFSET\b|\bFOR\b|$)", re.IGNORECASE | re.DOTALL)
JOIN_OR_COMMA = re.compile(r",|\b(?:NATURAL\s+)?(?:(?:LEFT|RIGHT|FULL)(?:\s+OUTER)?\s+|INNER\s+|CROSS\s+)?JOIN\b",
                           re.IGNORECASE)
UPDATE = re.compile(r"^\s*UPDATE\s+(?:ONLY\s+)?\"?(?P<table>\w+)\"?", re.IGNORECASE)
DELETE = re.compile(r"^\s*DELETE\s+FROM\s+(?:ONLY\s+)?\"?(?P<table>\w+)\"?", re.IGNORECASE)
INSERT = re.compile(r"\bINSERT\s+INTO\s+\"?(?P<table>\w+)\"?", re.IGNORECASE)
KEYWORDS = {"AS", "ON", "USING", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "NATURAL", "OUTER", "LATERAL"}


class LockOrderViolation(AssertionError):
    pass


def _flat(sql: str) -> str:
    """`sql` with every parenthesised part (subqueries, CTE bodies, argument lists) cut out."""
    out, depth = [], 0
    for ch in sql:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _from_tables(flat: str) -> dict:
    """{alias or name: table} of the top-level FROM clause of a flattened statement."""
    m = FROM.search(flat)
    if not m:
        return {}
    tables = {}
    for item in JOIN_OR_COMMA.split(m.group("items")):
        words = [w.strip('"') for w in re.split(r"\s+", item.strip()) if w]
        if not words or words[0].upper() in KEYWORDS:
            continue
        table = words[0].split(".")[-1]
        tables[table] = table
        rest = [w for w in words[1:] if w.upper() != "AS"]
        if rest and rest[0].upper() not in KEYWORDS:
            tables[rest[0]] = table
    return tables


def locked_tables(sql: str) -> list[str]:
    """The tables a locking SELECT locks (empty for any other statement)."""
    if "FOR" not in sql.upper():
        return []
    flat = _flat(sql)
    m = LOCKING.search(flat)
    if not m:
        return []
    tables = _from_tables(flat)
    if m.group("of"):
        return list(dict.fromkeys(tables.get(n.strip().strip('"'), n.strip().strip('"'))
                                  for n in m.group("of").split(",") if n.strip()))
    return list(dict.fromkeys(tables.values()))


def written_table(sql: str) -> tuple[str, str] | None:
    """("update" | "insert", table) for an UPDATE / DELETE / INSERT statement."""
    head = sql.lstrip()[:7].upper()
    if head.startswith(("UPDATE", "DELETE")):
        m = (UPDATE if head.startswith("UPDATE") else DELETE).match(sql)
        return ("update", m.group("table")) if m else None
    if head.startswith(("INSERT", "WITH")):
        m = INSERT.search(_flat(sql))
        return ("insert", m.group("table")) if m else None
    return None


@dataclass
class Transaction:
    """What one outermost transaction holds: its highest rank so far (and which table), the
    tables it locked or wrote, and the outside-ORDER table it locked, if any."""

    rank: int = -1
    table: str = ""
    touched: set = field(default_factory=set)
    outside: str = ""


class LockOrderRecorder:
    def __init__(self):
        self.violations: list[LockOrderViolation] = []
        self.statements = 0  # locking statements checked (the fixture's own tests look at it)
        self._installed = []

    # --- installing: the wrapper on every connection, the transaction boundaries on Atomic ------

    def install(self, monkeypatch) -> None:
        for conn in connections.all(initialized_only=True):
            self._wrap(conn)
        connection_created.connect(self._on_connection_created, weak=False, dispatch_uid=id(self))
        recorder, enter, exit_ = self, transaction.Atomic.__enter__, transaction.Atomic.__exit__

        def __enter__(atomic):
            enter(atomic)
            conn = transaction.get_connection(atomic.using)
            if recorder._is_outermost(conn, atomic):
                recorder._wrap(conn)
                conn._lock_order_tx = Transaction()

        def __exit__(atomic, *exc):
            conn = transaction.get_connection(atomic.using)
            if recorder._is_outermost(conn, atomic):
                conn._lock_order_tx = None
            return exit_(atomic, *exc)

        monkeypatch.setattr(transaction.Atomic, "__enter__", __enter__)
        monkeypatch.setattr(transaction.Atomic, "__exit__", __exit__)

    def uninstall(self) -> None:
        connection_created.disconnect(dispatch_uid=id(self))
        for conn in self._installed:
            if self._check in conn.execute_wrappers:
                conn.execute_wrappers.remove(self._check)
            conn._lock_order_tx = None
        self._installed.clear()

    def _on_connection_created(self, sender, connection, **kwargs) -> None:
        self._wrap(connection)

    def _wrap(self, conn) -> None:
        if self._check not in conn.execute_wrappers:
            conn.execute_wrappers.append(self._check)
            self._installed.append(conn)

    @staticmethod
    def _is_outermost(conn, atomic) -> bool:
        blocks = conn.atomic_blocks
        return bool(blocks) and blocks[-1] is atomic and all(b._from_testcase for b in blocks[:-1])

    # --- checking ---------------------------------------------------------------------------------

    def _check(self, execute, sql, params, many, context):
        if isinstance(sql, str):
            tx = getattr(context["connection"], "_lock_order_tx", None) or Transaction()  # autocommit: alone
            locks = locked_tables(sql)
            if locks:
                self.statements += 1
                self._take(tx, locks, sql)
            else:
                written = written_table(sql)
                if written is not None:
                    how, table = written
                    if how == "update" and table not in tx.touched and lock_rank_of_table(table) is not None:
                        self._take(tx, [table], sql)
                    tx.touched.add(table)
        return execute(sql, params, many, context)

    def _take(self, tx: Transaction, tables: list[str], sql: str) -> None:
        ranked = sorted((lock_rank_of_table(t), t) for t in tables if lock_rank_of_table(t) is not None)
        outside = [t for t in tables if lock_rank_of_table(t) is None]
        if ranked:
            low_rank, low = ranked[0]
            if tx.outside:
                self._fail(f"{low} (rank {low_rank} of ledger.locks.ORDER) locked after {tx.outside}, which is "
                           "outside ORDER and so is locked alone", sql)
            if low_rank < tx.rank:
                self._fail(f"{low} (rank {low_rank}) locked after {tx.table} (rank {tx.rank}) in one transaction; "
                           f"ledger.locks.ORDER is {ORDER_TEXT}", sql)
            tx.rank, tx.table = max((tx.rank, tx.table), ranked[-1])
        for t in outside:
            if tx.rank >= 0 or (tx.outside and tx.outside != t):
                self._fail(f"{t} locked together with {tx.outside or tx.table} in one transaction: rows outside "
                           "ledger.locks.ORDER are locked alone", sql)
            tx.outside = t
        tx.touched.update(tables)

    def _fail(self, message: str, sql: str) -> None:
        where = "".join(ln for ln in traceback.format_stack(limit=40)
                        if "/site-packages/" not in ln and "lock_order.py" not in ln)
        exc = LockOrderViolation(f"lock order: {message}\n  SQL: {sql[:300]}\n  in thread "
                                 f"{threading.current_thread().name}, at:\n{where}")
        self.violations.append(exc)
        raise exc
