"""`flask --app wsgi ...`: the operator's commands (db, workspace, tokens, xero, ops), which
`create_app` registers on the app's CLI.

The ops commands import `ops.commands` when run, so the web process never imports it. Each
command first checks what it needs (`_ready`, ops/preflight.py): a database that is missing,
unreachable or not at this code's schema, or an unreachable Redis, is one line saying what to
do and status 1, and nothing is created on the way.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from services.connection import ConnectError, ConnectionService
from services.runtime import Runtime
from store import workspaces
from store.db import transaction
from store.migrate import upgrade


def register(app: Flask) -> None:
    """Put every command group on the app's `flask` CLI."""
    for group in (db_cli, workspace_cli, tokens_cli, xero_cli, ops_cli):
        app.cli.add_command(group)


def _runtime() -> Runtime:
    return current_app.extensions["xm"]


def _ready(database: bool = True, redis: str = "no") -> Runtime:
    """The runtime, once what the command needs answers: the database at this code's schema
    (`database`), Redis (`redis`: "no", "if-set" when REDIS_URL is set, or "required").
    Otherwise one line on stderr saying what to do, and status 1."""
    from ops import preflight

    rt = _runtime()
    try:
        if database:
            preflight.database(rt.settings.database_url)
        if redis == "required" or (redis == "if-set" and rt.settings.redis_url):
            preflight.redis_server(rt.settings.redis_url)
    except preflight.Unready as problem:
        raise click.ClickException(str(problem)) from None
    return rt


@click.group("db", help="Database schema.")
def db_cli() -> None:
    pass


@db_cli.command("upgrade", help="Apply every Alembic migration to DATABASE_URL.")
def db_upgrade() -> None:
    from ops import preflight

    url = _runtime().settings.database_url
    try:
        preflight.database(url, schema=False)  # a server that does not answer: one line, not a traceback
    except preflight.Unready as problem:
        raise click.ClickException(str(problem)) from None
    upgrade(url)
    click.echo("database is at the newest schema")


@click.group("workspace", help="CRM workspaces and their API keys.")
def workspace_cli() -> None:
    pass


@workspace_cli.command("create", help="Create a workspace; print its admin and read API keys (shown once).")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def workspace_create(name: str, as_json: bool) -> None:
    now = datetime.now(timezone.utc)
    with transaction(_ready().sessions) as session:
        ws = workspaces.create_workspace(session, name, now)
        admin_key = workspaces.issue_key(session, ws.id, "admin", now)
        read_key = workspaces.issue_key(session, ws.id, "read", now)
        ws_id = ws.id
    if as_json:
        click.echo(json.dumps({"workspace_id": ws_id, "name": name, "admin_key": admin_key, "read_key": read_key}))
    else:
        click.echo(f"workspace {ws_id} ({name})\nadmin key: {admin_key}\nread key:  {read_key}")


@workspace_cli.group("keys", help="A workspace's API keys: list, issue, revoke.")
def keys_cli() -> None:
    pass


def _key_json(record: workspaces.KeyRecord) -> dict:
    return {"id": record.id, "workspace_id": record.workspace_id, "role": record.scope, "prefix": record.prefix,
            "created_at": _iso(record.created_at), "revoked_at": _iso(record.revoked_at)}


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _known_workspace(session, workspace_id: int) -> None:
    if not workspaces.workspace_exists(session, workspace_id):
        raise click.ClickException(f"no workspace {workspace_id}")


@keys_cli.command("list", short_help="List the workspace's keys (never the keys themselves).",
                  help="The workspace's API keys: id, role, prefix, created, revoked (never the key).")
@click.option("--workspace", "workspace_id", type=int, required=True, help="The workspace id.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_appcontext
def keys_list(workspace_id: int, as_json: bool) -> None:
    with _ready().sessions() as session:
        _known_workspace(session, workspace_id)
        keys = workspaces.list_keys(session, workspace_id)
    if as_json:
        click.echo(json.dumps({"workspace_id": workspace_id, "keys": [_key_json(k) for k in keys]}, indent=2))
        return
    rows = [("ID", "ROLE", "PREFIX", "CREATED", "REVOKED")]
    rows += [(str(k.id), k.scope, k.prefix + "…", _iso(k.created_at) or "", _iso(k.revoked_at) or "-")
             for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@keys_cli.command("issue", short_help="Issue a key and print it (shown once).",
                  help="Issue a new API key for the workspace and print it (shown once).")
@click.option("--workspace", "workspace_id", type=int, required=True, help="The workspace id.")
@click.option("--role", type=click.Choice(workspaces.SCOPES), required=True,
              help="read: the read API and pins; admin: also records, keys and the admin page.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_appcontext
def keys_issue(workspace_id: int, role: str, as_json: bool) -> None:
    with transaction(_ready().sessions) as session:
        _known_workspace(session, workspace_id)
        record, key = workspaces.issue_key_record(session, workspace_id, role, datetime.now(timezone.utc))
    if as_json:
        click.echo(json.dumps({**_key_json(record), "key": key}))
    else:
        click.echo(f"{role} key {record.id} of workspace {workspace_id} (shown once, store it now):\n{key}")


@keys_cli.command("revoke", short_help="Revoke a key, its embed tokens and admin sessions.",
                  help="Revoke an API key at once, with every embed token and admin session it issued.")
@click.argument("key_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_appcontext
def keys_revoke(key_id: int, as_json: bool) -> None:
    rt = _ready()
    try:
        with transaction(rt.sessions) as session:
            record = workspaces.revoke_key(session, key_id, datetime.now(timezone.utc))
    except (workspaces.UnknownKey, workspaces.AlreadyRevoked) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(_key_json(record)))
    else:
        click.echo(f"revoked {record.scope} key {record.id} ({record.prefix}…) of workspace {record.workspace_id}")


@click.group("tokens", help="The Xero tokens sealed at rest (TOKEN_KEYS).")
def tokens_cli() -> None:
    pass


@tokens_cli.command("rotate", help="Re-encrypt every stored token under the first TOKEN_KEYS key.")
@with_appcontext
def tokens_rotate() -> None:
    count = ConnectionService(_ready()).rotate_tokens()
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
    rt = _ready(redis="if-set")
    try:  # without REDIS_URL the backfill is not queued: the workers' ticker starts it
        done = ConnectionService(rt).connect_client_credentials(workspace_id, tenant_id)
    except ConnectError as exc:
        raise click.ClickException(str(exc)) from None
    record = done.connection
    if as_json:
        click.echo(json.dumps({"workspace_id": record.workspace_id, "tenant_id": record.tenant_id,
                               "tenant_name": record.tenant_name, "backfill_queued": done.backfill_queued}))
    else:
        click.echo(f"workspace {record.workspace_id} connected to {record.tenant_name} ({record.tenant_id}); "
                   f"backfill {'queued' if done.backfill_queued else 'will start with the next worker tick'}")


@click.group("ops", help="Operations: see what is wrong (status, failed) and put it right (replay, resync).")
def ops_cli() -> None:
    pass


def _redis_or_none(rt: Runtime):
    try:
        return rt.redis
    except RuntimeError:
        return None


def _redis_required(rt: Runtime):
    try:
        return rt.redis
    except RuntimeError:
        raise click.ClickException("REDIS_URL is not set: the job queue is needed for this") from None


def _progress(items=None, **options):
    """A progress bar on stderr, so `--json` output stays clean on stdout."""
    return click.progressbar(items, file=sys.stderr, **options)


def _moment(value: str | None, name: str) -> datetime | None:
    """An ISO date or date-time; naive ones are UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date or date-time", param_hint=name) from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@ops_cli.command(
    "status",
    help="Per workspace and tenant: connection state, last webhook, last successful sync, sync lag (age "
    "of the oldest outstanding inbox event), changed ids waiting, queued/running/failed jobs, the Xero "
    "rate budget left this minute and today, backfill progress, the organisation's time zone (IANA; "
    "--json: timezone, timezone_xero, today), and a WARNING when the tenant's webhooks look broken "
    "(reconciliation found changes no webhook announced, and none arrived since) or when Xero's time "
    "zone id is unknown (dates then use UTC). CALLS TODAY / MB TODAY: the Xero egress metered for the "
    "tenant this UTC day (answers, and MB pulled on the wire; --json: calls_today, bytes_today, "
    "calls_30d, bytes_30d); --egress shows only that, today and over 30 days, for every metered tenant.",
)
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant.")
@click.option("--all", "include_disconnected", is_flag=True, help="Include disconnected connections.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
@click.option("--egress", is_flag=True,
              help="Only the Xero egress: calls and MB pulled today and over 30 days.")
@with_appcontext
def ops_status(tenant_id: str | None, include_disconnected: bool, as_json: bool, egress: bool) -> None:
    from ops import commands as ops

    rt = _ready()  # Redis unreachable is a WARNING line of the report: the database's facts still show
    report = ops.tenant_status(rt.sessions, _redis_or_none(rt), datetime.now(timezone.utc),
                               limits=rt.settings.xero_limits, tenant_id=tenant_id,
                               include_disconnected=include_disconnected)
    if egress:
        if tenant_id is not None and report.egress is not None:
            report.egress = {k: v for k, v in report.egress.items() if k == tenant_id}
        click.echo(json.dumps({"now": report.now.isoformat(), "egress": report.egress}, indent=2) if as_json
                   else ops.render_egress(report))
        return
    click.echo(json.dumps(report.as_json(), indent=2) if as_json else ops.render_status(report))


@ops_cli.command(
    "replay",
    help="Re-run inbox events: set them back to pending and wake their tenants' syncs, which fetch each "
    "object's current state from Xero. Select by --id (repeatable), --tenant, a --since/--until window on "
    "the time we received them (ISO, UTC unless a zone is given) and --state (repeatable; default every "
    "state but ignored). Criteria combine. Idempotent: replaying twice changes nothing more. --dry-run "
    "only says what would happen.",
)
@click.option("--id", "event_ids", type=int, multiple=True, help="An inbox event id (repeatable).")
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's events.")
@click.option("--since", default=None, help="Received at or after this ISO time, e.g. 2026-11-25T08:00.")
@click.option("--until", default=None, help="Received before this ISO time.")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["pending", "enqueued", "failed", "done", "ignored"]),
              help="Only events in this state (repeatable): pending = never enqueued, "
              "failed = the sync gave up.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed, per tenant; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def ops_replay(event_ids, tenant_id, since, until, states, dry_run: bool, as_json: bool) -> None:
    from ops import commands as ops

    rt = _ready()  # without Redis the events wait as pending for the workers' relay
    selection = ops.Selection(ids=tuple(event_ids), tenant_id=tenant_id, since=_moment(since, "--since"),
                              until=_moment(until, "--until"), states=tuple(states))
    try:
        result = ops.replay(rt.sessions, _redis_or_none(rt), selection, datetime.now(timezone.utc),
                            dry_run=dry_run, progress=_progress)
    except ops.OpsError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(json.dumps(result.as_json(), indent=2) if as_json else ops.render_replay(result))


@ops_cli.command(
    "resync",
    help="Resync TENANT as a job. With no option: from scratch (restart the backfill from the first page; "
    "rows already mirrored stay until their fresh copy arrives). With --since DATE: an If-Modified-Since "
    "sweep of everything changed since DATE (the reconcile job, from that mark). --wait follows it with a "
    "progress bar; otherwise it prints how to follow it.",
)
@click.argument("tenant_id")
@click.option("--since", default=None,
              help="Sweep changes since this ISO date or date-time instead of a full load.")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it is done.")
@click.option("--timeout", type=float, default=3600.0, show_default=True,
              help="With --wait: give up after this many seconds.")
@with_appcontext
def ops_resync(tenant_id: str, since: str | None, wait: bool, timeout: float) -> None:
    from ops import commands as ops

    rt = _ready(redis="required")
    redis = _redis_required(rt)
    now = datetime.now(timezone.utc)
    moment = _moment(since, "--since")
    try:
        if moment is None:
            started = ops.resync_from_scratch(rt.sessions, redis, tenant_id, now)
        else:
            started = ops.resync_since(rt.sessions, redis, tenant_id, moment, now)
    except ops.OpsError as exc:
        raise click.ClickException(str(exc)) from None
    what = "full backfill" if moment is None else f"sweep of changes since {moment.isoformat()}"
    queued = "queued" if started.newly_queued else "already queued"
    click.echo(f"{what} of {tenant_id}: job {started.job_id or '(scheduled)'} {queued}")
    if not wait:
        click.echo(f"follow it with: flask --app wsgi ops status --tenant {tenant_id}")
        return
    steps = ops.follow(rt.sessions, redis, started, timeout=timeout)
    last = None
    try:
        with _progress(length=1 if moment else 3, label=f"{started.kind} {tenant_id[:8]}",
                       item_show_func=lambda step: step.text if step else "") as bar:
            for step in steps:
                bar.update(max(0, step.done - bar.pos), step)
                last = step
    except ops.OpsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{started.kind} of {tenant_id} {last.text if last else 'done'}")


@ops_cli.command(
    "failed",
    help="List the jobs in RQ's failed-job registries (every queue) with their tenant and error (the "
    "exception's last line); --requeue ID or --requeue-all puts them back on their queue as they were, "
    "--drop ID deletes one. Their inbox events stay outstanding either way.",
)
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's jobs.")
@click.option("--requeue", "requeue_ids", multiple=True, help="Requeue this failed job (repeatable).")
@click.option("--requeue-all", is_flag=True, help="Requeue every failed job (of --tenant, if given).")
@click.option("--drop", "drop_ids", multiple=True, help="Delete this failed job (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def ops_failed(tenant_id, requeue_ids, requeue_all: bool, drop_ids, as_json: bool) -> None:
    from ops import commands as ops

    redis = _redis_required(_ready(database=False, redis="required"))
    try:
        if requeue_all:
            requeue_ids = tuple(job.id for job in ops.failed_jobs(redis, tenant_id))
        requeued = ops.requeue(redis, list(requeue_ids), progress=_progress) if requeue_ids else []
        dropped = ops.drop(redis, list(drop_ids)) if drop_ids else []
    except ops.OpsError as exc:
        raise click.ClickException(str(exc)) from None
    remaining = ops.failed_jobs(redis, tenant_id)
    if as_json:
        click.echo(json.dumps({"requeued": requeued, "dropped": dropped,
                               "failed": [job.as_json() for job in remaining]}, indent=2))
        return
    for job_id in requeued:
        click.echo(f"requeued {job_id}")
    for job_id in dropped:
        click.echo(f"dropped {job_id}")
    click.echo(ops.render_failed(remaining))


