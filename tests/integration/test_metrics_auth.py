"""/metrics behind METRICS_TOKEN (issue 19): 401 without the bearer or with a wrong one, 200
with it; open as before when no token is set (outside production)."""

from __future__ import annotations

import pytest

from infra.settings import Settings
from store.db import transaction
from wsgi import close_app, create_app

from .mirror_rows import workspace

TOKEN = "metrics-token-0123456789abcdef0123456789"


def app_with(database_url, redis_url, token: str):
    return create_app(Settings(database_url=database_url, redis_url=redis_url, metrics_token=token))


@pytest.fixture
def tenant(sessions):
    with transaction(sessions) as s:
        workspace(s, "Acme", "tenant-secretive")
    return "tenant-secretive"


@pytest.mark.parametrize("authorization", [
    None,
    "",
    f"Basic {TOKEN}",
    "Bearer ",
    f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN.upper()}",
    "Bearer \u00e9t\u00e9",
])
def test_metrics_without_the_token_is_401_and_names_no_tenant(database_url, redis_url, tenant, authorization):
    app = app_with(database_url, redis_url, TOKEN)
    try:
        headers = {} if authorization is None else {"Authorization": authorization}
        answer = app.test_client().get("/metrics", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert tenant.encode() not in answer.data and b"xero_mirror" not in answer.data
    finally:
        close_app(app)


def test_metrics_with_the_token_is_200(database_url, redis_url, tenant):
    app = app_with(database_url, redis_url, TOKEN)
    try:
        for scheme in ("Bearer", "bearer"):
            answer = app.test_client().get("/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
            assert answer.status_code == 200
            assert b'xero_mirror_up{component="database"} 1.0' in answer.data
            assert tenant.encode() in answer.data
        assert app.test_client().get("/healthz").status_code == 200  # /healthz stays open
    finally:
        close_app(app)


def test_metrics_are_open_when_no_token_is_set(database_url, redis_url, tenant):
    app = app_with(database_url, redis_url, "")
    try:
        answer = app.test_client().get("/metrics")
        assert answer.status_code == 200 and tenant.encode() in answer.data
    finally:
        close_app(app)


def test_metrics_token_is_read_from_the_environment():
    settings = Settings.from_env({"METRICS_TOKEN": f"  {TOKEN} "})
    assert settings.metrics_token == TOKEN and TOKEN not in repr(settings)
