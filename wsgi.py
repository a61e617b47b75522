"""The one Flask app: webhooks, the CRM API, the widget and the admin page; and its CLI.

`flask --app wsgi ...` and `gunicorn wsgi:app` both start here.
"""
from __future__ import annotations

from datetime import datetime, timezone

import click
from flask import Flask
from flask.cli import with_appcontext

from store.config import Settings
from store.db import transaction
from store.migrate import upgrade
from store.runtime import Runtime
from store import lifecycle, workspaces
from store.secrets import TokenBox
from views.admin import bp as admin_bp
from views.api import bp as api_bp
from views.widget import embed_bp
from webhook.routes import bp as webhook_bp


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.extensions["xm"] = Runtime(settings)
    app.register_blueprint(webhook_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(embed_bp)
    app.cli.add_command(db_cli)
    app.cli.add_command(workspace_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(xero_cli)
    return app


def runtime(app: Flask) -> Runtime:
    return app.extensions["xm"]


@click.group("db", help="Database schema.")
def db_cli() -> None:
    pass


@db_cli.command("upgrade", help="Apply every Alembic migration to DATABASE_URL.")
def db_upgrade() -> None:
    from flask import current_app

    upgrade(runtime(current_app).settings.database_url)
    click.echo("database is at the newest schema")


@click.group("workspace", help="CRM workspaces and their API keys.")
def workspace_cli() -> None:
    pass


@workspace_cli.command("create", help="Create a workspace; print its admin and read API keys (shown once).")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def workspace_create(name: str, as_json: bool) -> None:
    from flask import current_app
    import json

    now = datetime.now(timezone.utc)
    with transaction(runtime(current_app).sessions) as session:
        ws = workspaces.create_workspace(session, name, now)
        admin_key = workspaces.issue_key(session, ws.id, "admin", now)
        read_key = workspaces.issue_key(session, ws.id, "read", now)
        ws_id = ws.id
    if as_json:
        click.echo(json.dumps({"workspace_id": ws_id, "name": name, "admin_key": admin_key, "read_key": read_key}))
    else:
        click.echo(f"workspace {ws_id} ({name})\nadmin key: {admin_key}\nread key:  {read_key}")


@click.group("tokens", help="The Xero tokens sealed at rest (TOKEN_KEYS).")
def tokens_cli() -> None:
    pass


@tokens_cli.command("rotate", help="Re-encrypt every stored token under the first TOKEN_KEYS key.")
@with_appcontext
def tokens_rotate() -> None:
    from flask import current_app

    rt = runtime(current_app)
    with transaction(rt.sessions) as session:
        count = lifecycle.rotate_tokens(session, TokenBox(rt.settings.token_keys))
    click.echo(f"re-encrypted {count} tokens under the newest key")


@click.group("xero", help="Xero connections.")
def xero_cli() -> None:
    pass


@xero_cli.command(
    "connect-client-credentials",
    help="Connect a workspace to an organisation with the client-credentials grant (a custom "
    "connection): obtain a token, read /connections, store the connection, queue its backfill.",
)
@click.option("--workspace", "workspace_id", type=int, required=True, help="The workspace id.")
@click.option("--tenant", "tenant_id", default=None, help="The organisation, when the app reaches several.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_appcontext
def xero_connect_client_credentials(workspace_id: int, tenant_id: str | None, as_json: bool) -> None:
    from flask import current_app
    import json

    from worker.connect import ConnectError, connect_client_credentials  # the web process never imports it

    rt = runtime(current_app)
    try:
        redis_client = rt.redis
    except RuntimeError:
        redis_client = None  # REDIS_URL unset: the workers' ticker starts the backfill
    try:
        done = connect_client_credentials(rt.settings, rt.sessions, redis_client, workspace_id, tenant_id)
    except ConnectError as exc:
        raise click.ClickException(str(exc)) from None
    record = done.connection
    if as_json:
        click.echo(json.dumps({"workspace_id": record.workspace_id, "tenant_id": record.tenant_id,
                               "tenant_name": record.tenant_name, "backfill_queued": done.backfill_queued}))
    else:
        click.echo(f"workspace {record.workspace_id} connected to {record.tenant_name} ({record.tenant_id}); "
                   f"backfill {'queued' if done.backfill_queued else 'will start with the next worker tick'}")


_app: Flask | None = None


def __getattr__(name: str) -> Flask:
    """`wsgi:app`, built on first access rather than at import (tests build their own)."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app()
    return _app
