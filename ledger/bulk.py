"""Bulk writes for the set-based paths (the 835 posting): COPY rows in, UPDATE from COPY'd rows,
history rows in one statement.

Django's QuerySet.bulk_update builds a CASE expression per object and field, and bulk_create
sends every value as a placeholder that psycopg's client-side binding parses and quotes one by
one; both cost milliseconds per row in Python. COPY sends the rows as one stream formatted by
psycopg's C code; the server checks them like an INSERT (constraints, triggers, including the
journal's statement-level balance trigger)."""

import json
from functools import cache

import psycopg
from django.db import connection


def copy_rows(table: str, columns: list[str], rows) -> int:
    """COPY `rows` (tuples in `columns` order; Python values, None for NULL) into `table`."""
    count = 0
    cols = ", ".join(connection.ops.quote_name(c) for c in columns)
    # the psycopg cursor itself (Django's wrapper has no copy()): its errors are turned into Django's
    # (IntegrityError, DataError...) like those of any other statement
    with connection.cursor() as cur, connection.wrap_database_errors, \
            cur.cursor.copy(f"COPY {connection.ops.quote_name(table)} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def write_bytes(table: str, column: str, pk: int, data: bytes) -> None:
    """Set one bytea column to `data`, sent as a binary parameter (server-side binding): Django's
    client-side binding would first escape every byte of a file of many megabytes into the SQL."""
    q = connection.ops.quote_name
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cur:
        cur.execute(f"UPDATE {q(table)} SET {q(column)} = %b WHERE id = %s", [data, pk])


def update_rows(table: str, columns: dict[str, str], rows, *, key: str = "id") -> int:
    """UPDATE `table` SET each of `columns` ({name: SQL type}) from `rows` ((key, value...) tuples):
    the rows are COPY'd into a temporary table, then one UPDATE ... FROM joins it. Call inside a
    transaction."""
    rows = list(rows)
    if not rows:
        return 0
    q = connection.ops.quote_name
    temp = f"_upd_{table}"
    with connection.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} ({q(key)} bigint, "
                    + ", ".join(f"{q(c)} {t}" for c, t in columns.items()) + ") ON COMMIT DROP")
        copy_rows(temp, [key, *columns], rows)
        cur.execute(f"UPDATE {q(table)} AS t SET " + ", ".join(f"{q(c)} = u.{q(c)}" for c in columns)
                    + f" FROM {temp} AS u WHERE t.{q(key)} = u.{q(key)}")
        count = cur.rowcount
        cur.execute(f"DROP TABLE {temp}")
    return count


def _sql_type(field) -> str:
    if field.get_internal_type() in ("ForeignKey", "OneToOneField"):
        return field.target_field.rel_db_type(connection)
    return field.db_type(connection)


def _value(field, obj):
    value = getattr(obj, field.attname)
    if field.get_internal_type() == "JSONField" and value is not None:
        return json.dumps(value)
    return value


def bulk_update_rows(model, objs, fields: list[str]) -> int:
    """Write `fields` of model instances `objs` in one UPDATE (see `update_rows`)."""
    meta = model._meta
    cols = [meta.get_field(name) for name in fields]
    return update_rows(meta.db_table, {f.column: _sql_type(f) for f in cols},
                       ((obj.pk, *(_value(f, obj) for f in cols)) for obj in objs), key=meta.pk.column)


def update_model_rows(model, fields: list[str], rows) -> int:
    """Like `bulk_update_rows` for plain (pk, value...) tuples in `fields` order (JSON already dumped)."""
    meta = model._meta
    cols = [meta.get_field(name) for name in fields]
    return update_rows(meta.db_table, {f.column: _sql_type(f) for f in cols}, rows, key=meta.pk.column)


_HISTORY_EXTRA = {"history_id", "history_date", "history_change_reason", "history_type", "history_user"}


@cache
def history_fields(model) -> tuple:
    """The columns django-simple-history copies from `model` into its historical table."""
    return tuple(f for f in model.history.model._meta.concrete_fields if f.name not in _HISTORY_EXTRA)


def history_snapshot(obj) -> tuple:
    """The values a history row of `obj` keeps, as they are now (cheaper than copying the instance)."""
    return tuple(getattr(obj, f.attname) for f in history_fields(type(obj)))


def copy_history(model, snapshots, *, user_id: int, at, history_type: str = "~") -> int:
    """Write history rows for `snapshots` ((history_snapshot(obj), reason) pairs) in one COPY: the
    same rows simple_history's bulk_history_create writes, without building model instances."""
    fields = history_fields(model)
    columns = [f.column for f in fields] + ["history_date", "history_change_reason", "history_type",
                                             "history_user_id"]
    return copy_rows(model.history.model._meta.db_table, columns,
                     (values + (at, reason, history_type, user_id) for values, reason in snapshots))


def history_from_table(model, ids_and_reasons, *, user_id: int, at, history_type: str = "~") -> int:
    """History rows copied from the table's current rows (INSERT ... SELECT), one per (id, reason)."""
    ids_and_reasons = list(ids_and_reasons)
    if not ids_and_reasons:
        return 0
    q = connection.ops.quote_name
    cols = ", ".join(q(f.column) for f in history_fields(model))
    hist = model.history.model._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {q(hist)} ({cols}, history_date, history_change_reason, history_type, history_user_id) "
            f"SELECT {', '.join('t.' + q(f.column) for f in history_fields(model))}, %s, u.reason, %s, %s "
            f"FROM {q(model._meta.db_table)} t JOIN unnest(%s::bigint[], %s::text[]) AS u(id, reason) ON t.id = u.id",
            [at, history_type, user_id, [i for i, _ in ids_and_reasons], [r for _, r in ids_and_reasons]])
        count = cur.rowcount
    return count
