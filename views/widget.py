"""The embeddable invoice widget, `GET /embed/{kind}/{id}`, and the embed tokens it runs on.

An iframe cannot send the workspace's API key, and the key must never reach a browser. So
the CRM's server asks for an embed token (`POST /api/v1/embed-tokens` with its key and
`{"kind": "contacts", "id": "crm-123"}`; views/api.py) and puts the URL it gets back in the
iframe. The token is "xme_" + an itsdangerous signature (SECRET_KEY, a salt used for
nothing else) over {workspace, kind, record id, the issuing key's id, expiry}: one hour,
one record, and it dies with its key (revoking the key ends every embed it issued). No
SECRET_KEY, no tokens: issuing refuses with a clear error rather than sign with a guess.

The URL it gets back is `/embed/{kind}/{id}#token=xme_...`: the token rides in the fragment,
which a browser never sends, so no server, proxy or access log on the way ever sees it. The
page is a server-rendered shell that holds no token; widget.js reads it from the fragment,
asks `POST /embed/{kind}/{id}/access` (token as the bearer) whether it opens this record
(the same refusals the page gave: expired, revoked, another record, embeds disabled), then
calls the JSON API with it (`Authorization: Bearer xme_...`), polling included. A reload
keeps the fragment, and so the widget. The older form, `?token=xme_...` in the query, still
opens the widget for links already handed out (checked before the page is served; the access
log blanks the value). The API takes an embed token for that one record only: its invoices,
summary and pins, and the payments of invoices it sees; never a record PUT, never another token.

Headers: a Content-Security-Policy that allows only this origin (no inline script, nothing
from the internet) and lets the page be framed by EMBED_FRAME_ANCESTORS (CSP source list,
default `*`, e.g. `https://crm.example.com https://*.example.org`); no Referer ever leaves
the page (a legacy URL holds the token); nothing is cached. EMBED_POLL_SECONDS (default 3) sets
how often an open widget refreshes itself; EMBED_PER_PAGE (default 10) its page size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.errors import InputError
from store import records
from store.models import ApiKey
from store.workspaces import Caller
from store.workspaces import key_hash as stored_key_hash  # the form api_keys.key_hash holds
from views.openapi import ID_MAX, KINDS, MAX_PER_PAGE

embed_bp = Blueprint(
    "embed",
    __name__,
    url_prefix="/embed",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

TOKEN_PREFIX = "xme_"
TOKEN_SALT = "xero-mirror/embed-token/v1"
TOKEN_LIFETIME = timedelta(hours=1)
VIEWS = (  # the tabs, in order; Unpaid is also the default list ("awaiting payment")
    ("unpaid", "Unpaid"),
    ("overdue", "Overdue"),
    ("open", "Open"),
    ("paid", "Paid"),
    ("pinned", "Pinned"),
)


class EmbedDisabled(InputError):
    """Embed tokens cannot be issued or read: the server has no SECRET_KEY."""


class BadEmbedToken(InputError):
    """A token that is forged or malformed ("invalid"), "expired", or whose key was "revoked"."""

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class EmbedCaller(Caller):
    """An embed token's caller: the workspace, narrowed to one record (scope "embed")."""

    kind: str = ""
    external_id: str = ""

    def sees_record(self, kind: str, external_id: str) -> bool:
        return (kind, external_id) == (self.kind, self.external_id)


@dataclass(frozen=True)
class EmbedToken:
    token: str
    url: str
    expires_at: datetime


def is_embed_token(bearer: str) -> bool:
    return bearer.startswith(TOKEN_PREFIX)


def issue(
    session: Session, secret: str, api_key: str, caller: Caller, kind: str, external_id: str, now: datetime
) -> EmbedToken:
    """A token for one record, signed for an hour; `api_key` is the (valid) key asking."""
    key_id = session.execute(
        select(ApiKey.id).where(ApiKey.key_hash == stored_key_hash(api_key))
    ).scalar_one()
    expires = now.replace(microsecond=0) + TOKEN_LIFETIME
    claims = {
        "w": caller.workspace_id,
        "k": kind,
        "r": external_id,
        "key": key_id,
        "exp": int(expires.timestamp()),
    }
    token = TOKEN_PREFIX + _serializer(secret).dumps(claims)
    url = url_for("embed.page", kind=kind, external_id=external_id) + "#token=" + token  # never sent
    return EmbedToken(token, url, expires)


def read(session: Session, secret: str, token: str, now: datetime) -> EmbedCaller:
    """The caller a token stands for; BadEmbedToken says why not."""
    if not is_embed_token(token):
        raise BadEmbedToken("not an embed token")
    try:
        claims = _serializer(secret).loads(token[len(TOKEN_PREFIX) :])
        workspace_id, kind, external_id = int(claims["w"]), str(claims["k"]), str(claims["r"])
        key_id, expires = int(claims["key"]), int(claims["exp"])
    except (BadData, KeyError, TypeError, ValueError):
        raise BadEmbedToken("the embed token is not valid") from None
    if now.timestamp() >= expires:
        raise BadEmbedToken("the embed token has expired: reload the CRM page for a new one", "expired")
    live = session.execute(
        select(ApiKey.id).where(
            ApiKey.id == key_id, ApiKey.workspace_id == workspace_id, ApiKey.revoked_at.is_(None)
        )
    ).scalar_one_or_none()
    if live is None:
        raise BadEmbedToken("the embed token is no longer valid: its API key was revoked", "revoked")
    return EmbedCaller(workspace_id=workspace_id, scope="embed", kind=kind, external_id=external_id)


def sees_invoice(session: Session, caller: EmbedCaller, tenant_id: str, invoice_id: str) -> bool:
    """Whether the token's record sees this invoice of the live tenant (as its list would)."""
    record = records.find(session, caller.workspace_id, records.KINDS[caller.kind], caller.external_id)
    if record is None:
        return False
    return records.shows(session, record, tenant_id, invoice_id)


def _serializer(secret: str) -> URLSafeSerializer:
    if not secret:
        raise EmbedDisabled("embed tokens are disabled: set SECRET_KEY on the server to issue them")
    return URLSafeSerializer(secret, salt=TOKEN_SALT)


# --- the page --------------------------------------------------------------------------------


@embed_bp.record_once
def _configure(state) -> None:
    """The widget's knobs, from the app's Settings (infra/settings.py) unless the app was given them."""
    settings = state.app.extensions["xm"].settings
    config = state.app.config
    config.setdefault("EMBED_FRAME_ANCESTORS", settings.embed_frame_ancestors)
    config.setdefault("EMBED_POLL_SECONDS", settings.embed_poll_seconds)
    config.setdefault("EMBED_PER_PAGE", min(settings.embed_per_page, MAX_PER_PAGE))


RECORD_PATH = f"/<any({', '.join(KINDS)}):kind>/<external_id>"


@embed_bp.get(RECORD_PATH)
def page(kind: str, external_id: str):
    """The widget: a shell whose script reads its token from the URL's fragment, or, for links
    in the older form (`?token=`), the widget for the token in the query, checked first."""
    token = request.args.get("token", "")
    if token:
        refusal = _refusal(kind, external_id, token)
        if refusal:
            return _refused(*refusal)
    placeholder = "__invoice__"
    return render_template(
        "widget/page.html",
        views=VIEWS,
        kind=kind,
        token=token,
        access_url=url_for("embed.access", kind=kind, external_id=external_id),
        list_url=url_for("api.list_invoices", kind=kind, external_id=external_id),
        summary_url=url_for("api.summary", kind=kind, external_id=external_id),
        pin_url=url_for("api.pin", kind=kind, external_id=external_id, invoice_id=placeholder),
        payments_url=url_for("api.payments", invoice_id=placeholder),
        placeholder=placeholder,
        poll_ms=int(current_app.config["EMBED_POLL_SECONDS"] * 1000),
        per_page=current_app.config["EMBED_PER_PAGE"],
    )


@embed_bp.post(f"{RECORD_PATH}/access")
def access(kind: str, external_id: str):
    """Whether the bearer (the token the page read from its fragment) opens this record:
    204, or the refusal the page shows (401, 404, 503) with its message."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    refusal = _refusal(kind, external_id, token) if token else (401, NO_LINK)
    if refusal:
        status, message = refusal
        return jsonify(error=message), status
    return "", 204


NO_LINK = "This invoice view needs a link from your CRM."
REFUSALS = {  # why a token was refused, said precisely: a tampered link is no expired one
    "invalid": "This invoice link is not valid: it may have been cut short or changed. Open the invoices "
    "from the record's page in your CRM again.",
    "expired": "This invoice view has expired. Reload the page in your CRM to see it again.",
    "revoked": "This invoice view was switched off: its CRM access key was revoked. Ask your CRM admin, "
    "then reload the page.",
}


def _refusal(kind: str, external_id: str, token: str) -> tuple[int, str] | None:
    """Why `token` does not open this record's widget, as (status, message); None if it does."""
    runtime = current_app.extensions["xm"]
    try:
        with runtime.read_sessions() as s:
            caller = read(s, runtime.settings.secret_key, token, datetime.now(UTC))
    except EmbedDisabled:
        return 503, "Invoice views are not enabled on this server."
    except BadEmbedToken as e:
        return 401, REFUSALS[e.reason]
    if len(external_id) > ID_MAX or not caller.sees_record(kind, external_id):
        return 404, "This link is for a different record."
    with runtime.read_sessions() as s:
        known = records.find(s, caller.workspace_id, records.KINDS[kind], external_id) is not None
    if not known:
        return 404, f"This {records.KINDS[kind]} is not known to the invoice service (any more)."
    return None


def _refused(status: int, message: str) -> tuple[str, int]:
    return render_template("widget/refused.html", message=message), status


@embed_bp.after_request
def _headers(response: Response) -> Response:
    ancestors = current_app.config["EMBED_FRAME_ANCESTORS"]
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        f"form-action 'none'; frame-ancestors {ancestors}"
    )
    response.headers["Referrer-Policy"] = "no-referrer"  # the page's URL carries its token
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.endpoint in ("embed.page", "embed.access"):
        response.headers["Cache-Control"] = "no-store"
    return response
