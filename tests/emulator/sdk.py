"""The real xero-python client pointed at an emulator: only base URLs changed (INFRA.md section 3)."""

from __future__ import annotations

import time

from urllib3.util.retry import Retry
from xero_python.accounting import AccountingApi
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.identity import IdentityApi


def sdk_token(response: dict, expires_in: float | None = None) -> dict:
    """A Xero token response as the dict the SDK's token getter must return."""
    lifetime = response["expires_in"] if expires_in is None else expires_in
    return {
        "access_token": response["access_token"],
        "refresh_token": response.get("refresh_token"),
        "id_token": response.get("id_token"),
        "scope": response["scope"].split(),
        "expires_in": response["expires_in"],
        "expires_at": time.time() + lifetime,
        "token_type": response["token_type"],
    }


class Sdk:
    """AccountingApi + IdentityApi sharing one ApiClient whose token lives in `self.token`."""

    def __init__(self, xero, token: dict) -> None:
        self.token = token
        self.saved: list[dict] = []
        cfg = Configuration()  # metaclass gotcha: set the token after construction
        cfg.oauth2_token = OAuth2Token(client_id=xero.client_id, client_secret=xero.client_secret)
        self.client = ApiClient(
            cfg, oauth2_token_getter=self._get, oauth2_token_saver=self._save, pool_threads=1
        )
        # urllib3 would otherwise sleep Retry-After and retry 429s itself
        self.client.rest_client.pool_manager.connection_pool_kw["retries"] = Retry(
            total=0, respect_retry_after_header=False
        )
        self.accounting = AccountingApi(self.client, base_url=xero.api_url)
        self.identity = IdentityApi(self.client, base_url=xero.url)

    def _get(self) -> dict:
        return self.token

    def _save(self, token: dict) -> None:
        self.token = token
        self.saved.append(token)
