"""The `storebot` command: serve, demo, import, db upgrade, sandbox. Exit 0 ok, 2 bad config or input, 1 else."""
# Each command imports what it runs inside its function (lazy on purpose): `storebot sandbox` must not load the
# product, and `storebot --help` stays quick.

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import Settings, load_settings, resolve_config_path
from bot.errors import ConfigError, ImportFileError, StorebotError
from bot.logs import configure_logging

log = logging.getLogger("storebot")

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(resolve_config_path(getattr(args, "config", None)))


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import create_app

    settings = _settings(args)
    settings.require_for_serve()
    configure_logging(settings.secrets())
    log.info("storebot serving on %s:%s", settings.server.host, settings.server.port)
    web.run_app(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_grace_seconds,
        print=None,
        access_log=None,
    )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot import db

    settings = _settings(args)
    configure_logging(settings.secrets())

    async def run() -> None:
        engine = db.make_engine(settings.database)
        try:
            await db.upgrade(engine)
            print(f"database schema at {await db.current_revision(engine)}")
        finally:
            await engine.dispose()

    asyncio.run(run())
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from bot.importing.importer import run_import

    settings = _settings(args)
    configure_logging(settings.secrets(), logging.WARNING)
    return asyncio.run(run_import(settings, [Path(p) for p in args.paths], progress=sys.stderr.isatty()))


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox import run_sandbox

    configure_logging([])
    return run_sandbox(host=args.host, port=args.port)


def cmd_task_run(args: argparse.Namespace) -> int:
    """Fire a task template now through the running server's own POST /api/tasks/run (same path as the schedule)."""
    import aiohttp

    settings = _settings(args)
    url = (args.url or settings.server.public_url).rstrip("/") + "/api/tasks/run"
    body: dict[str, object] = {"template": args.template}
    if args.stores:
        body["stores"] = [s.strip() for s in args.stores.split(",") if s.strip()]
    headers = {"Authorization": f"Bearer {settings.server.admin_token.get_secret_value()}"}

    async def post() -> tuple[int, str]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http, \
                http.post(url, json=body, headers=headers) as r:
            return r.status, await r.text()

    try:
        status, text = asyncio.run(post())
    except (aiohttp.ClientError, TimeoutError) as err:
        print(f"storebot: cannot reach the server at {url}: {err}", file=sys.stderr)
        return EXIT_FAIL
    print(text)
    if status == 422 or status == 400:
        return EXIT_BAD_INPUT
    return EXIT_OK if status < 300 else EXIT_FAIL


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo.run import run_demo

    return run_demo(port=args.port, sandbox_port=args.sandbox_port, keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storebot", description="WeCom bot server for chain stores")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the production server")
    p.add_argument("--config", help="config file (default: $STOREBOT_CONFIG, else ./config.toml)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="bot + WeCom sandbox + a sample chain on a temporary SQLite database")
    p.add_argument("--port", type=int, default=8080, help="bot port (0 = any free port)")
    p.add_argument("--sandbox-port", type=int, default=8090, help="sandbox port (0 = any free port)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder after exit")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("import", help="import master data (stores, staff, skus, stock) from CSV or XLSX")
    p.add_argument("paths", nargs="+", help="files named stores.csv, staff.xlsx, skus.csv, stock.csv, ...")
    p.add_argument("--config", help="config file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("db", help="database schema")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply schema migrations")
    up.add_argument("--config", help="config file")
    up.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("task", help="task templates on a running server")
    tasksub = p.add_subparsers(dest="task_command", required=True)
    run = tasksub.add_parser("run", help="create and push a template's task cards now (POST /api/tasks/run)")
    run.add_argument("template", help="a [[tasks]] key, e.g. morning_check")
    run.add_argument("--stores", help="comma-separated store codes (default: every store in the template's scope)")
    run.add_argument("--url", help="server base URL (default: server.public_url)")
    run.add_argument("--config", help="config file (for the URL and the admin token)")
    run.set_defaults(func=cmd_task_run)

    p = sub.add_parser("sandbox", help="run the WeCom API simulator alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.set_defaults(func=cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as err:
        print(f"storebot: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ImportFileError as err:
        print(f"storebot: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_OK
    except StorebotError as err:
        print(f"storebot: {err}", file=sys.stderr)
        return EXIT_FAIL
    return code


if __name__ == "__main__":
    sys.exit(main())
