"""The one seam to Xero: the only module that imports xero_python.

`XeroClient` wraps the SDK's ApiClient, AccountingApi and IdentityApi, pointed at the URLs
in Settings, and answers with Xero's own JSON (parsed with `parse_float=Decimal`, so money
is exact from the first byte) plus the rate-limit headers of every response. It decides no
retry and refreshes no token by itself:

- urllib3's own retries are off (by default it sleeps out a 429's Retry-After, up to hours);
- the SDK's automatic refresh is off (its token getter always hands back our current access
  token with no expiry); `xero.tokens` refreshes under a per-connection lock instead.

It asks for gzip (`Accept-Encoding: gzip` on every request: Xero bills integrations by the
bytes they pull, see docs XERO.md §7.1) and measures what each answer cost on the wire: the
body as sent (its compressed size when gzipped), read once undecoded and gunzipped here. Every
answer's size goes to `on_bytes(tenant_id or None, nbytes)`, or, inside `with
client.metering(sink):` on this thread, to `sink(tenant_id or None, nbytes)` instead (the
gateway meters a tenant's calls, token refreshes included, that way). Pages carry it too
(`XeroPage.wire_bytes`).

Errors come out as a small tree: `XeroRateLimited`, `XeroUnavailable`, `XeroUnauthorized`,
`ConnectionRevoked`, `XeroNotFound`, `XeroRequestError`, all `XeroError`.
"""
from __future__ import annotations

import gzip
import json
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import urllib3
from urllib3.util.retry import Retry
from xero_python.accounting import AccountingApi
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi
from xero_python.exceptions import ApiException, HTTPStatusException
from xero_python.identity import IdentityApi

from infra.errors import UpstreamError
from infra.settings import Settings
from xero.limits import Reported
from xero.translate import ms_datetime

DEFAULT_TIMEOUT = (5.0, 60.0)  # connect, read: a page of 1,000 invoices can take a while


class XeroError(UpstreamError):
    """Anything that went wrong talking to Xero. Messages never carry a token."""


class XeroRateLimited(XeroError):
    """429: wait `retry_after` seconds. `problem` is X-Rate-Limit-Problem (minute, day, ...)."""

    def __init__(self, retry_after: float, problem: str | None, reported: Reported | None = None):
        super().__init__(f"rate limited by Xero ({problem or 'unknown'} limit); retry after {retry_after}s")
        self.retry_after = retry_after
        self.problem = problem
        self.reported = reported or Reported()


class XeroUnavailable(XeroError):
    """5xx, a timeout or a connection error: transient, retry later with backoff."""


class XeroUnauthorized(XeroError):
    """401 on an API call: the access token was refused (refresh it once, then give up)."""


class ConnectionRevoked(XeroError):
    """Xero refused our grant (invalid_grant, invalid_client): a person must re-authorise."""


class XeroNotFound(XeroError):
    """404."""


class XeroRequestError(XeroError):
    """Any other 4xx: a permanent error in what we asked."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"Xero answered {status}: {detail}")
        self.status = status


@dataclass(frozen=True)
class XeroPage:
    """One response: the objects under its key, Xero's clock and the remaining-counts."""

    items: list[dict]
    reported: Reported = field(default_factory=Reported)
    server_time: datetime | None = None
    pagination: dict | None = None
    wire_bytes: int = 0  # the body as Xero sent it (compressed size when gzipped)


ByteMeter = Callable[[str | None, int], None]  # (tenant id, or None for token and /connections calls; bytes)

_token_urls_lock = threading.Lock()


def point_token_api(identity_url: str) -> None:
    """The SDK keeps the token endpoints in class attributes: point them at XERO_IDENTITY_URL."""
    with _token_urls_lock:
        TokenApi.refresh_token_url = f"{identity_url}/connect/token"
        TokenApi.client_credentials_token_url = f"{identity_url}/connect/token"
        TokenApi.revoke_token_url = f"{identity_url}/connect/revocation"


class XeroClient:
    def __init__(self, settings: Settings, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 on_status: Callable[[str], None] | None = None, on_bytes: ByteMeter | None = None):
        self.settings = settings
        self.on_status = on_status or _ignore  # told each answer's HTTP status (for the metrics)
        self.on_bytes = on_bytes or _ignore_bytes  # told each answer's size on the wire (egress)
        self._local = threading.local()  # this thread's meters (see `metering`)
        self.timeout = timeout
        self.token_url = f"{settings.xero_identity_url}/connect/token"
        point_token_api(settings.xero_identity_url)  # only for the SDK's sake: it never refreshes here
        config = Configuration()  # a metaclass makes every later Configuration() a copy of the first:
        config.oauth2_token = OAuth2Token(  # so set the token after construction, never as an argument
            client_id=settings.xero_client_id, client_secret=settings.xero_client_secret
        )
        self._access_token: str | None = None
        self._api = ApiClient(
            config,
            pool_threads=1,
            oauth2_token_getter=self._sdk_token,
            oauth2_token_saver=self._sdk_saver,
        )
        pool = self._api.rest_client.pool_manager
        pool.connection_pool_kw["retries"] = Retry(total=0, respect_retry_after_header=False)
        pool.connection_pool_kw["timeout"] = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        # Xero bills the bytes pulled: ask for gzip on every request (it costs nothing if ignored).
        # Bodies are read undecoded and gunzipped in `_read_counted`, so the size is measured once.
        self._api.set_default_header("Accept-Encoding", "gzip")
        self._accounting = AccountingApi(self._api, base_url=settings.xero_api_url)
        connections_base = settings.xero_connections_url
        if connections_base.lower().endswith("/connections"):
            connections_base = connections_base[: -len("/connections")]
        self._identity = IdentityApi(self._api, base_url=connections_base)

    # -- the SDK's token hooks: it never refreshes by itself -----------------------------
    def _sdk_token(self) -> dict:
        if not self._access_token:
            raise XeroUnauthorized("no access token given for this call")
        return {
            "access_token": self._access_token,
            "token_type": "Bearer",
            "scope": [],
            "expires_in": None,
            "expires_at": None,  # "always valid" to the SDK: we refresh, under our lock
        }

    def _sdk_saver(self, token: dict) -> None:
        raise AssertionError("the SDK must never refresh tokens itself")

    # -- metering ------------------------------------------------------------------------
    @contextmanager
    def metering(self, sink: ByteMeter) -> Iterator[None]:
        """Within it, every answer this thread receives (token and /connections calls too) is
        reported to `sink(tenant_id or None, nbytes)` instead of `on_bytes`; innermost wins."""
        meters = self._local.__dict__.setdefault("meters", [])
        meters.append(sink)
        try:
            yield
        finally:
            meters.pop()

    def _metered(self, tenant_id: str | None, nbytes: int) -> None:
        meters = self._local.__dict__.get("meters")
        (meters[-1] if meters else self.on_bytes)(tenant_id, nbytes)

    # -- Accounting API ------------------------------------------------------------------
    def invoices(
        self,
        tenant_id: str,
        access_token: str,
        *,
        ids: list[str] | None = None,
        modified_since: datetime | None = None,
        page: int | None = 1,
        page_size: int | None = None,
        order: str | None = None,
        summary_only: bool = False,
    ) -> XeroPage:
        """`page=None`: un-paged (Xero leaves line items out); `summary_only`: Xero's light
        form, of which only ids, numbers and UpdatedDateUTC may be relied on."""
        kwargs = _optional(i_ds=ids, if_modified_since=modified_since, page=page, page_size=page_size, order=order,
                           summary_only=summary_only or None)
        return self._call(access_token, "Invoices", self._accounting.get_invoices, tenant_id, **kwargs)

    def invoice(self, tenant_id: str, access_token: str, *, invoice_id: str) -> XeroPage:
        """One invoice by id (Xero still answers for deleted ones here)."""
        return self._call(access_token, "Invoices", self._accounting.get_invoice, tenant_id, invoice_id=invoice_id)

    def contact(self, tenant_id: str, access_token: str, *, contact_id: str) -> XeroPage:
        return self._call(access_token, "Contacts", self._accounting.get_contact, tenant_id, contact_id=contact_id)

    def contacts(
        self,
        tenant_id: str,
        access_token: str,
        *,
        ids: list[str] | None = None,
        modified_since: datetime | None = None,
        page: int | None = 1,
        page_size: int | None = None,
        order: str | None = None,
        summary_only: bool = False,
    ) -> XeroPage:
        kwargs = _optional(
            i_ds=ids, if_modified_since=modified_since, page=page, page_size=page_size, order=order,
            include_archived=True, summary_only=summary_only or None,
        )
        return self._call(access_token, "Contacts", self._accounting.get_contacts, tenant_id, **kwargs)

    def payments(
        self,
        tenant_id: str,
        access_token: str,
        *,
        modified_since: datetime | None = None,
        page: int = 1,
        page_size: int | None = None,
        order: str | None = None,
    ) -> XeroPage:
        kwargs = _optional(if_modified_since=modified_since, page=page, page_size=page_size, order=order)
        return self._call(access_token, "Payments", self._accounting.get_payments, tenant_id, **kwargs)

    def credit_notes(
        self,
        tenant_id: str,
        access_token: str,
        *,
        where: str | None = None,
        modified_since: datetime | None = None,
        page: int | None = 1,
        page_size: int | None = None,
        order: str | None = None,
    ) -> XeroPage:
        """GET /CreditNotes. Xero documents no `IDs` filter here (nor does the SDK send one): a
        few credit notes by id are asked for with `where` (see credit_notes_where)."""
        kwargs = _optional(where=where, if_modified_since=modified_since, page=page, page_size=page_size, order=order)
        return self._call(access_token, "CreditNotes", self._accounting.get_credit_notes, tenant_id, **kwargs)

    def organisation(self, tenant_id: str, access_token: str) -> dict:
        page = self._call(access_token, "Organisations", self._accounting.get_organisations, tenant_id)
        return page.items[0] if page.items else {}

    # -- Identity ------------------------------------------------------------------------
    def connections(self, access_token: str) -> list[dict]:
        """GET /connections: the tenants this token may read."""
        body, _headers, _wire = self._raw(access_token, self._identity.get_connections)
        return body if isinstance(body, list) else []

    def client_credentials_token(self) -> dict:
        """A custom-connection token (client-credentials grant)."""
        return self._token_request({"grant_type": "client_credentials"})

    def refresh_token(self, refresh_token: str, scope: list[str] | str) -> dict:
        """Rotate a refresh token. A refusal (invalid_grant) is ConnectionRevoked."""
        scope_text = scope if isinstance(scope, str) else " ".join(scope)
        return self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope_text}
        )

    # -- plumbing ------------------------------------------------------------------------
    def _token_request(self, fields: dict[str, str]) -> dict:
        """POST to the token endpoint as the SDK's TokenApi does, but with our timeout (and our
        URL, not the class attribute another client in this process may have re-pointed)."""
        url = self.token_url
        post = {
            **fields,
            "client_id": self.settings.xero_client_id,
            "client_secret": self.settings.xero_client_secret,
        }
        try:
            response = self._api.call_api(
                url,
                "POST",
                header_params={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
                post_params=post,
                auth_settings=None,
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=self.timeout,
            )
            self.on_status(str(response.status))
            data, wire = _read_counted(response)
        except HTTPStatusException as exc:
            self.on_status(str(exc.status))
            self._metered(None, _error_bytes(exc))
            raise _token_error(exc) from None
        except urllib3.exceptions.HTTPError as exc:
            raise XeroUnavailable(f"token endpoint unreachable: {type(exc).__name__}") from None
        self._metered(None, wire)
        try:
            return json.loads(data)
        except ValueError:
            raise XeroUnavailable("token endpoint answered something that is not JSON") from None

    def _call(self, access_token: str, key: str, method, tenant_id: str, **kwargs) -> XeroPage:
        body, headers, wire = self._raw(access_token, method, tenant_id, metered_as=tenant_id, **kwargs)
        if not isinstance(body, dict):
            raise XeroUnavailable(f"unexpected {key} response")
        return XeroPage(
            items=list(body.get(key) or []),
            reported=_reported(headers),
            server_time=_server_time(body.get("DateTimeUTC")),
            pagination=body.get("pagination"),
            wire_bytes=wire,
        )

    def _raw(self, access_token: str, method, *args, metered_as: str | None = None,
             **kwargs) -> tuple[Any, Any, int]:
        """Xero's parsed JSON, the headers and the body's size on the wire; every answer,
        refusals included, is metered (as `metered_as`, the tenant)."""
        self._access_token = access_token
        try:
            response = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            self.on_status(str(response.status))
            data, wire = _read_counted(response)
            headers = response.headers
        except HTTPStatusException as exc:
            self.on_status(str(exc.status))
            self._metered(metered_as, _error_bytes(exc))
            raise _status_error(exc) from None
        except ApiException as exc:  # SSL and other transport errors the SDK wraps
            self.on_status("transport_error")
            raise XeroUnavailable(f"transport error: {exc.reason}") from None
        except urllib3.exceptions.HTTPError as exc:  # timeouts, refused connections, resets
            self.on_status("unreachable")
            raise XeroUnavailable(f"Xero unreachable: {type(exc).__name__}") from None
        finally:
            self._access_token = None
        self._metered(metered_as, wire)
        try:
            return json.loads(data, parse_float=Decimal), headers, wire
        except ValueError:
            raise XeroUnavailable("Xero answered something that is not JSON") from None


def is_xero_id(value: str) -> bool:
    return bool(_GUID.fullmatch(value))


def credit_notes_where(ids: list[str]) -> str:
    """`where` for these credit notes: CreditNoteID==guid("...") OR ... (ids must be GUIDs)."""
    for credit_note_id in ids:
        if not is_xero_id(credit_note_id):
            raise ValueError(f"not a Xero id: {credit_note_id!r}")
    return " OR ".join(f'CreditNoteID==guid("{i}")' for i in ids)


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _ignore(_status: str) -> None:
    pass


def _optional(**kwargs) -> dict:
    return {k: v for k, v in kwargs.items() if v is not None}


def _ignore_bytes(_tenant_id: str | None, _nbytes: int) -> None:
    pass


def _read_counted(response) -> tuple[bytes, int]:
    """The body, decoded, and its size as sent: read once, undecoded, and gunzipped here."""
    try:
        raw = response.read(decode_content=False)
    finally:
        response.release_conn()
    return _decoded(raw, response.headers), len(raw)


def _decoded(raw: bytes, headers) -> bytes:
    encoding = ((headers.get("Content-Encoding") if headers is not None else None) or "").strip().lower()
    try:
        if encoding in ("", "identity"):
            return raw
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(raw)
        if encoding == "deflate":
            try:
                return zlib.decompress(raw)
            except zlib.error:
                return zlib.decompress(raw, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    except (OSError, EOFError, zlib.error):
        raise XeroUnavailable(f"Xero sent a corrupt {encoding} body") from None
    raise XeroUnavailable(f"Xero answered in an encoding not asked for: {encoding}")


def _error_bytes(exc: ApiException) -> int:
    """A refusal's size on the wire: its Content-Length (the compressed size when gzipped; the
    SDK has already decoded the body), else the length of the body read."""
    length = _int_header(exc.headers, "Content-Length")
    if length is not None:
        return length
    body = exc.body or b""
    return len(body if isinstance(body, bytes) else str(body).encode())


def _server_time(value: Any) -> datetime | None:
    try:
        return ms_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _int_header(headers, name: str) -> int | None:
    value = headers.get(name) if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reported(headers) -> Reported:
    return Reported(
        minute_remaining=_int_header(headers, "X-MinLimit-Remaining"),
        day_remaining=_int_header(headers, "X-DayLimit-Remaining"),
        app_minute_remaining=_int_header(headers, "X-AppMinLimit-Remaining"),
    )


def _body_text(exc: ApiException) -> str:
    body = exc.body or b""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text[:300]


def _oauth_error(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or b"{}").get("error") or "")
    except (ValueError, AttributeError):
        return ""


def _status_error(exc: HTTPStatusException) -> XeroError:
    status = exc.status or 0
    headers = exc.headers
    if status == 429:
        retry_after = _int_header(headers, "Retry-After")
        problem = headers.get("X-Rate-Limit-Problem") if headers is not None else None
        return XeroRateLimited(float(retry_after if retry_after is not None else 60), problem, _reported(headers))
    if status == 401:
        return XeroUnauthorized("Xero refused the access token (401)")
    if status == 404:
        return XeroNotFound("not found (404)")
    if status >= 500:
        return XeroUnavailable(f"Xero answered {status}")
    return XeroRequestError(status, _body_text(exc))


def _token_error(exc: HTTPStatusException) -> XeroError:
    status = exc.status or 0
    error = _oauth_error(exc)
    if status in (400, 401) and error in ("invalid_grant", "invalid_client", "unauthorized_client"):
        return ConnectionRevoked(f"Xero refused the grant ({error}): the connection must be re-authorised")
    if status == 429 or status >= 500:
        return XeroUnavailable(f"token endpoint answered {status}")
    return XeroRequestError(status, error or "token request refused")
