"""One-statement bulk update: UPDATE t SET ... FROM (VALUES ...) WHERE t.id = v.id.

Django's QuerySet.bulk_update builds a CASE expression per object and field, which costs
milliseconds per row in Python; this sends the values as parameters with the column types cast."""

from django.db import connection


def bulk_update_rows(model, objs, fields: list[str], *, batch_size: int = 2000) -> int:
    objs = list(objs)
    if not objs:
        return 0
    meta = model._meta
    cols = [meta.get_field(name) for name in fields]
    pk = meta.pk
    table = connection.ops.quote_name(meta.db_table)
    names = [connection.ops.quote_name(f.column) for f in cols]
    casts = [f"{pk.db_type(connection)}"] + [f.db_type(connection) if f.get_internal_type() != "ForeignKey"
                                              else f.target_field.rel_db_type(connection) for f in cols]
    sets = ", ".join(f"{n} = v.{n}" for n in names)
    count = 0
    with connection.cursor() as cur:
        for start in range(0, len(objs), batch_size):
            chunk = objs[start:start + batch_size]
            row = "(" + ", ".join(f"%s::{c}" for c in casts) + ")"
            values = ", ".join([row] * len(chunk))
            params = []
            for obj in chunk:
                params.append(obj.pk)
                params += [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in cols]
            cur.execute(f"UPDATE {table} AS t SET {sets} FROM (VALUES {values}) AS v(id, {', '.join(names)}) "
                        f"WHERE t.{connection.ops.quote_name(pk.column)} = v.id", params)
            count += cur.rowcount
    return count
