"""The one Flask app: webhooks, the CRM API, the widget and the admin page; and its CLI.

`flask --app wsgi ...` and `gunicorn wsgi:app` both start here.
"""
from __future__ import annotations

from datetime import datetime, timezone

import click
from flask import Flask

from store.config import Settings
from store.db import transaction
from store.migrate import upgrade
from store.runtime import Runtime
from store import workspaces
from views.api import bp as api_bp
from webhook.routes import bp as webhook_bp


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.extensions["xm"] = Runtime(settings)
    app.register_blueprint(webhook_bp)
    app.register_blueprint(api_bp)
    app.cli.add_command(db_cli)
    app.cli.add_command(workspace_cli)
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


_app: Flask | None = None


def __getattr__(name: str) -> Flask:
    """`wsgi:app`, built on first access rather than at import (tests build their own)."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app()
    return _app
