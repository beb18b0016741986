"""``carenet serve`` (the REST API, dashboard and views over the store) and ``carenet keys``
(create, list and revoke API keys).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from carenet.cli.options import DB_HELP
from carenet.cli.ui import console, err_console, friendly_errors


@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None,
    workers: Annotated[int, typer.Option(help="Server processes (each with its own connections).")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the store over HTTP: the REST API under /v1, docs at /docs, the dashboard and
    views at /dashboard.

    Every /v1 endpoint needs an API key: create one with `carenet keys create --role reader`;
    the dashboard asks for one once and keeps a session cookie.
    """
    import os

    import uvicorn

    from carenet.store import RunStore, default_db_url, describe_url

    url = db or default_db_url()
    os.environ["CARENET_DB"] = url  # the app factory (and each worker process) reads it
    RunStore(url).close()  # create the schema once, and fail early on a bad URL
    err_console.print(f"serving {describe_url(url)} on http://{host}:{port} (docs: /docs)",
                      highlight=False)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    err_console.print(f"dashboard: http://{shown}:{port}/dashboard (log in with an API key: "
                      "`carenet keys create --role reader`)", highlight=False, soft_wrap=True)
    uvicorn.run("carenet.api.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, access_log=False)


keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@keys_app.command("create")
@friendly_errors
def keys_create(
    role: Annotated[str, typer.Option(help="reader (reads), analyst (also uploads and starts runs) or admin (also manages keys).")] = "reader",
    name: Annotated[str, typer.Option(help="A note saying who uses the key.")] = "",
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None,
) -> None:
    """Create an API key and print it once (the store keeps only its hash)."""
    from carenet.store import RunStore, default_db_url

    store = RunStore(db or default_db_url())
    try:
        info, token = store.create_key(role, name)
    finally:
        store.close()
    err_console.print(f"created {info.role} key {info.id} ({info.name}); it is shown only "
                      "now:", highlight=False)
    console.print(token, highlight=False, soft_wrap=True)


@keys_app.command("list")
@friendly_errors
def keys_list(db: Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None) -> None:
    """List API keys (ids, names, roles; never the secrets). Works on a read-only store."""
    from carenet.store import RunStore, default_db_url
    from carenet.store.health import StoreUnavailableError

    url = db or default_db_url()
    try:
        store = RunStore(url)
    except StoreUnavailableError as exc:
        if exc.kind != "read-only":
            raise
        store = RunStore(url, read_only=True)  # a read-only directory or mount: just read
    try:
        rows = store.list_keys()
    finally:
        store.close()
    table = Table("id", "name", "role", "created", "revoked")
    for r in rows:
        table.add_row(r["id"], r["name"], r["role"], r["created"], r["revoked"] or "")
    console.print(table)


@keys_app.command("revoke")
@friendly_errors
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (as in `carenet keys list`).", show_default=False)],
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)] = None,
) -> None:
    """Revoke an API key."""
    from carenet.store import RunStore, default_db_url

    store = RunStore(db or default_db_url())
    try:
        row = store.revoke_key(key_id)
    finally:
        store.close()
    console.print(f"revoked key {row['id']} ({row['name']})", highlight=False)

