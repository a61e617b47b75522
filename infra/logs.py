"""Structured logs: one JSON object a line, with the ids that say whose work it was, never a secret.

`configure()` installs it on the root logger (the web app in create_app, `python -m worker`
in main). Each line carries `ts`, `level`, `logger`, `message` and whatever the call gave as
`extra=` (workspace_id, tenant_id, delivery_id, event_ids, ...). Inside an RQ job the job's
id and kind are added, and its tenant (the job's first argument) when the call named none.

`Redact` runs on every record: values under keys that look secret (access_token,
refresh_token, id_token, token, secret, authorization, password, api key, cookie) become
"[redacted]", and so does any `Bearer ...` string or JWT in any text, the message included,
and the value of any URL parameter named like a secret (`?token=`, `?ticket=`, `?code=`,
`&state=`: infra/redact.py). `configure()` also puts it on the `werkzeug` logger (`flask run`'s
request log), so that its lines are scrubbed whichever handler writes them; it also takes out
the terminal colour codes werkzeug puts around a request line's status.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from infra import redact as urls

_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
REDACTED = urls.REDACTED
SECRET_KEY = re.compile(r"token|ticket|secret|authori[sz]ation|password|passwd|api[_-]?key|cookie|ciphertext", re.I)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_INLINE = re.compile(
    r"""(?ix)
    (["']?(?:access_token|refresh_token|id_token|client_secret|token|ticket|secret|authorization|password|api_key)
     ["']?
     \s*[:=]\s*["']?)
    ((?:bearer|basic)\s+)?
    ([^"'\s,&;}]+)
    """
)
_MAX_DEPTH = 4
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # a terminal's colour and style codes


def redact_text(text: str) -> str:
    """A string with bearer tokens, JWTs, `secret=value` pairs and URLs' credentials blanked out."""
    text = urls.url(text)
    text = _BEARER.sub("Bearer " + REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    return _INLINE.sub(lambda m: m.group(1) + (m.group(2) or "") + REDACTED, text)


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of `value` safe to log: secret-looking keys blanked, strings scrubbed."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if depth >= _MAX_DEPTH:
        return repr(type(value).__name__)
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) else redact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v, depth + 1) for v in value]
    return value


class Redact(logging.Filter):
    """Scrub a record in place before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: log what we have
            message = str(record.msg)
        if "\x1b" in message:  # terminal colours (werkzeug's request log): not in a JSON line
            message = _ANSI.sub("", message)
        record.msg, record.args = redact_text(message), None
        for key in list(vars(record)):
            if key in _RECORD_FIELDS:
                continue
            setattr(record, key, REDACTED if SECRET_KEY.search(key) else redact(getattr(record, key)))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_job_context())
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(entry, default=_fallback, ensure_ascii=False)


def _job_context() -> dict[str, Any]:
    """The running RQ job's id, function and tenant (its first argument), if any."""
    from rq import get_current_job  # a context variable read: no Redis call

    job = get_current_job()
    if job is None:
        return {}
    context: dict[str, Any] = {"job_id": job.id, "job": job.func_name}
    if (job.func_name or "").startswith("worker.jobs.") and job.args:
        context["tenant_id"] = str(job.args[0])
    return context


def _fallback(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(level: str | int = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send every log record, as JSON lines, to `stream` (default stderr); idempotent per process."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_xm_json", False):
            root.removeHandler(old)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Redact())
    handler._xm_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    _scrub_logger("werkzeug")  # its request lines carry whole URLs; it may have a handler of its own
    return handler


def _scrub_logger(name: str) -> None:
    """Put Redact on the logger itself: it then runs before any handler, ours or the library's."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, Redact) for f in logger.filters):
        logger.addFilter(Redact())
