#!/usr/bin/env python3
"""Data survives the move into apps (issue 10, item 8): a database made and filled by the code
of the last commit before the restructure is migrated by today's code and reads the same.

    source /tmp/envrc   # or any DATABASE_URL of a server where we may create databases
    .venv/bin/python scripts/check_migration_forward.py [--old f3b23fb] [--db settle_migcheck]

Steps:
 1. a fresh database (--db, dropped first) on DATABASE_URL's server;
 2. a git worktree of --old: `migrate`, `seed_demo`, `sync_schedules` and two API tokens made
    there (an integration's and one acting for the demo manager), with the old code;
 3. a snapshot in plain SQL (no model of either side): per table its row count and, per column,
    a checksum (md5) of its values in primary-key order; and the figures people read: journal
    lines per account, credits per state, remittance files and claims per state;
 4. `migrate` with this checkout's code (--new, default: the checkout holding this script);
 5. the same snapshot, compared column by column (a dropped column is data lost, unless listed
    in REWRITTEN and the new columns give back what it held); then with the new ORM: every model
    reads all its rows (same count as the table), the old tokens authenticate at GET
    /api/v1/token, and every django-q schedule points at an importable function after
    `sync_schedules`.
Prints one JSON line (before, after, what differs) and exits 1 when anything differs. The
worktree is removed and the database dropped at the end (--keep keeps the database).

Django's own bookkeeping tables (django_migrations, django_content_type, auth_permission) may
only grow; they are reported, not compared."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BOOKKEEPING = {"django_migrations", "django_content_type", "auth_permission"}

# Columns a migration replaced by others: table -> (the old columns' values, the same values from
# the new columns), each an SQL select list whose first item is the row's key. A dropped column is
# data lost unless it is listed here and the new columns give back exactly what it held.
REWRITTEN = {
    # credits/0007: a patient's balance owed split into what is due now and what waits on a payer
    "credits_patientresponsibility": ("patient_id, balance_owed, available, locked",
                                      "patient_id, due_now + pending_payer, available, locked"),
}

FIGURES = {
    "journal_lines_per_account":
        "SELECT account, count(*), sum(amount)::text FROM ledger_journalline GROUP BY account ORDER BY account",
    "journal_entries_per_kind": "SELECT kind, count(*) FROM ledger_journalentry GROUP BY kind ORDER BY kind",
    "credits_per_state": "SELECT state, count(*), sum(amount)::text, sum(on_hand)::text FROM credits_credit "
                         "GROUP BY state ORDER BY state",
    "remittance_files_per_status": "SELECT status, count(*), sum(paid_total)::text FROM ledger_remittancefile "
                                   "GROUP BY status ORDER BY status",
    "remittance_claims_per_state": "SELECT state, count(*), sum(paid)::text FROM ledger_remittanceclaim "
                                   "GROUP BY state ORDER BY state",
    "api_tokens": "SELECT role, count(*), count(revoked_at) FROM ledger_apitoken GROUP BY role ORDER BY role",
}

# Run with the new code (manage.py shell -c): reads every model through the ORM, authenticates the
# old tokens, checks the schedules. Prints one JSON object.
NEW_ORM_CHECK = r"""
import importlib, json
from django.apps import apps
from django.db import connection, transaction
from django.test import Client
from django.test.utils import setup_test_environment
from django.utils import timezone
from django_q.models import Schedule

def importable(path):
    module, _, name = path.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False

out = {"models": {}, "orm_mismatch": [], "tokens": [], "schedules_before_sync": {}, "schedules": {}}
for model in apps.get_models(include_auto_created=True):
    if not model._meta.managed or model._meta.proxy:
        continue
    table = model._meta.db_table
    with connection.cursor() as cur:
        cur.execute(f'SELECT count(*) FROM "{table}"')
        raw = cur.fetchone()[0]
    fields = [f.attname for f in model._meta.concrete_fields]
    try:
        with transaction.atomic():
            read = sum(1 for _ in model._base_manager.values_list(*fields).iterator(chunk_size=2000))
    except Exception as exc:  # a column the model has and the table lacks, a bad type...
        read = f"none ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    out["models"][model._meta.label] = read
    if read != raw:
        out["orm_mismatch"].append([model._meta.label, table, raw, read])
out["schedules_before_sync"] = {s.name: [s.func, importable(s.func)] for s in Schedule.objects.order_by("name")}
from config.schedules import sync
sync(now=timezone.now())
out["schedules"] = {s.name: [s.func, importable(s.func)] for s in Schedule.objects.order_by("name")}
setup_test_environment()
for raw in TOKENS:
    r = Client().get("/api/v1/token", HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
    out["tokens"].append({"status": r.status_code, "practice": (body.get("practice") or {}).get("id"),
                          **{k: body.get(k) for k in ("name", "role", "effective_role", "acts_for")}})
from django.contrib.contenttypes.models import ContentType
out["stale_content_types"] = sorted(f"{c.app_label}.{c.model}" for c in ContentType.objects.all() if c.model_class() is None)
print("ORMCHECK " + json.dumps(out, default=str))
"""


def url_for(base: str, dbname: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def run(cmd: list[str], *, cwd: Path, env: dict, capture: bool = False) -> str:
    done = subprocess.run(cmd, check=False, cwd=cwd, env=env, text=True, capture_output=True)
    if done.returncode != 0:
        sys.stderr.write(f"$ {' '.join(cmd)} (in {cwd})\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n")
        raise SystemExit(2)
    return done.stdout if capture else ""


def manage(tree: Path, env: dict, *args: str) -> str:
    return run([sys.executable, "manage.py", *args], cwd=tree, env=env, capture=True)


def snapshot(url: str) -> dict:
    """Per table its row count and, per column, a checksum of its values in primary-key order (so
    a table whose columns changed is still compared on the columns it kept); the values of the
    REWRITTEN expressions that exist; the figures. Plain SQL, no model of either side."""
    out = {"tables": {}, "columns": {}, "rewritten": {}, "figures": {}}
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")
        for (table,) in cur.fetchall():
            with conn.cursor() as c2:
                c2.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                           " AND table_name = %s ORDER BY column_name", [table])
                cols = [r[0] for r in c2.fetchall()]
                c2.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                           " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary"
                           " ORDER BY a.attname", [table])
                key = [r[0] for r in c2.fetchall()] or cols
                order = sql.SQL(", ").join(sql.Identifier(k) for k in key)
                sums = sql.SQL(", ").join(
                    sql.SQL("md5(COALESCE(string_agg(COALESCE({}::text, '<null>'), ',' ORDER BY {}), ''))")
                    .format(sql.Identifier(c), order) for c in cols)
                c2.execute(sql.SQL("SELECT count(*), {} FROM {}").format(sums, sql.Identifier(table)))
                count, *digests = c2.fetchone()
            out["tables"][table] = count
            out["columns"][table] = dict(zip(cols, digests, strict=True))
        for table, exprs in REWRITTEN.items():
            for expr in exprs:
                try:
                    with conn.transaction():
                        rows = conn.execute(f"SELECT {expr} FROM {table} ORDER BY 1").fetchall()
                    out["rewritten"][f"{table}: {expr}"] = [list(map(str, r)) for r in rows]
                except psycopg.errors.UndefinedColumn:
                    pass  # not (or no longer) there
        for name, query in FIGURES.items():
            cur.execute(query)
            out["figures"][name] = [list(r) for r in cur.fetchall()]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", default="f3b23fb", help="the commit before the restructure")
    ap.add_argument("--new", type=Path, default=ROOT, help="the checkout whose migrations are checked")
    ap.add_argument("--db", default="settle_migcheck", help="database to create (dropped first)")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()
    base = os.environ.get("DATABASE_URL")
    if not base:
        sys.exit("DATABASE_URL is not set (source /tmp/envrc, or python scripts/devdb.py url)")
    url = url_for(base, args.db)
    env = dict(os.environ, DATABASE_URL=url)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # each tree's manage.py default (config.settings)

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.db)))
    worktree = Path(tempfile.mkdtemp(prefix="mig-old-")) / "tree"
    run(["git", "worktree", "add", "--detach", str(worktree), args.old], cwd=ROOT, env=env)
    try:
        # the old tree's own packages, not this checkout's (the editable install maps names to it)
        where = manage(worktree, env, "shell", "-c", "import ledger; print(ledger.__file__)").strip().splitlines()[-1]
        assert where.startswith(str(worktree)), f"the old tree imported {where}"
        manage(worktree, env, "migrate", "--noinput")
        manage(worktree, env, "seed_demo")
        manage(worktree, env, "sync_schedules")
        with psycopg.connect(url) as conn:
            practice = conn.execute("SELECT id FROM ledger_practice ORDER BY id LIMIT 1").fetchone()[0]
        tokens = [manage(worktree, env, "create_api_token", "--practice", str(practice), "--name", "migcheck-ehr"),
                  manage(worktree, env, "create_api_token", "--practice", str(practice), "--name", "migcheck-boss",
                         "--role", "manager", "--created-by", "manager")]
        tokens = [t.strip().splitlines()[-1] for t in tokens]
        before = snapshot(url)
    finally:
        run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, env=env)
        worktree.parent.rmdir()

    try:
        migrated = manage(args.new, env, "migrate", "--noinput")
        after = snapshot(url)
        orm = manage(args.new, env, "shell", "-c", f"TOKENS = {tokens!r}\n{NEW_ORM_CHECK}")
        orm = json.loads(orm.split("ORMCHECK ", 1)[1])
    finally:
        if not args.keep:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db)))

    problems, rewrites = [], {}
    for table, count in before["tables"].items():
        if table in BOOKKEEPING:
            continue
        if table not in after["tables"]:
            problems.append(f"table {table} ({count} rows) is gone")
            continue
        if after["tables"][table] != count:
            problems.append(f"{table}: {count} rows before, {after['tables'][table]} after")
        old, new = before["columns"][table], after["columns"][table]
        changed = sorted(c for c in old if c in new and old[c] != new[c])
        if changed:
            problems.append(f"{table}: values differ in {changed}")
        dropped = sorted(set(old) - set(new))
        if dropped:
            old_expr, new_expr = REWRITTEN.get(table, ("", ""))
            was = before["rewritten"].get(f"{table}: {old_expr}")
            now = after["rewritten"].get(f"{table}: {new_expr}")
            if was is None or now is None:
                problems.append(f"{table}: columns dropped {dropped}")
            elif was != now:
                problems.append(f"{table}: {dropped} replaced, but ({new_expr}) differs from ({old_expr})")
            else:
                rewrites[table] = {"dropped": dropped, "checked": f"({old_expr}) == ({new_expr})", "rows": len(was)}
    for table in BOOKKEEPING:
        if after["tables"].get(table, 0) < before["tables"].get(table, 0):
            problems.append(f"{table} shrank")
    if before["figures"] != after["figures"]:
        problems.append("figures differ")
    problems += [f"ORM reads {read} of {raw} rows of {table} ({label})" for label, table, raw, read
                 in orm["orm_mismatch"]]
    problems += [f"old token {i} answered {t['status']}" for i, t in enumerate(orm["tokens"]) if t["status"] != 200]
    problems += [f"schedule {name} runs {func}, which does not import" for name, (func, ok) in orm["schedules"].items()
                 if not ok]

    new_tables = {t: after["tables"][t] for t in after["tables"] if t not in before["tables"]}
    added_columns = {t: sorted(set(after["columns"][t]) - set(before["columns"][t])) for t in before["columns"]
                     if t in after["columns"] and set(after["columns"][t]) - set(before["columns"][t])}
    report = {
        "ok": not problems, "problems": problems, "old": args.old,
        "tables": len(before["tables"]),
        "rows_before": sum(c for t, c in before["tables"].items() if t not in BOOKKEEPING),
        "rows_after": sum(after["tables"].get(t, 0) for t in before["tables"] if t not in BOOKKEEPING),
        "figures": before["figures"], "figures_after": after["figures"] if before["figures"] != after["figures"]
        else "same",
        "bookkeeping": {t: [before["tables"].get(t, 0), after["tables"].get(t, 0)] for t in sorted(BOOKKEEPING)},
        "new_tables": new_tables, "added_columns": added_columns, "rewritten": rewrites,
        "migrations_applied": [ln.strip() for ln in migrated.splitlines() if ln.strip().startswith("Applying")],
        "orm_models_read": len(orm["models"]), "tokens": orm["tokens"],
        "schedules_before_sync": orm["schedules_before_sync"], "schedules": orm["schedules"],
        "stale_content_types": orm["stale_content_types"],
    }
    print(json.dumps(report, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
