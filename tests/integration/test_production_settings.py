"""APP_ENV=production refuses weak settings (issue 19): each process the Procfile runs exits
non-zero with one line naming the variable; TRUSTED_HOSTS is honoured; the admin cookie is
Secure in production. Outside production (the demo, the tests) nothing is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from infra.errors import ConfigError
from infra.settings import Settings
from tests.e2e.test_procfile_web import get, running_web, web_command
from tests.integration.admin_flow import bearer, new_workspace, token_key  # noqa: F401  (a fixture)
from wsgi import close_app, create_app

ROOT = Path(__file__).resolve().parents[2]
STRONG = {
    "APP_ENV": "production",
    "SECRET_KEY": "s" * 32,
    "PUBLIC_URL": "https://mirror.example.com",
    "EMBED_FRAME_ANCESTORS": "https://crm.example.com",
    "METRICS_TOKEN": "m" * 32,
}
WEAK = [  # (what changes, the variable the one line must name)
    ({"SECRET_KEY": "s" * 31}, "SECRET_KEY"),
    ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ({"SECRET_KEY": "é" * 15}, "SECRET_KEY"),  # 30 bytes
    ({"PUBLIC_URL": ""}, "PUBLIC_URL"),
    ({"PUBLIC_URL": "http://mirror.example.com"}, "PUBLIC_URL"),
    ({"PUBLIC_URL": "https://"}, "PUBLIC_URL"),
    ({"EMBED_FRAME_ANCESTORS": ""}, "EMBED_FRAME_ANCESTORS"),
    ({"EMBED_FRAME_ANCESTORS": "*"}, "EMBED_FRAME_ANCESTORS"),
    ({"EMBED_FRAME_ANCESTORS": "https://crm.example.com *"}, "EMBED_FRAME_ANCESTORS"),
    ({"EMBED_FRAME_ANCESTORS": "https:"}, "EMBED_FRAME_ANCESTORS"),
    ({"METRICS_TOKEN": ""}, "METRICS_TOKEN"),
    ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
]
OTHERS = [WEAK[0], WEAK[4], WEAK[7], WEAK[10], ({"APP_ENV": "prod"}, "APP_ENV")]  # APP_ENV: the Procfile sets it


def env_with(changes: dict[str, str], database_url: str = "sqlite:////nonexistent/never-opened.db") -> dict[str, str]:
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin", "PORT": "1",
           "DATABASE_URL": database_url, **STRONG, **changes}
    return {k: v for k, v in env.items() if v != ""}  # "": unset


def refused(argv: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """The exit status and the non-blank output lines of `argv`, which must end by itself."""
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # it started instead of refusing: nothing of it may linger
        process.communicate()
        raise
    return process.returncode, [line for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("changes,variable", WEAK, ids=[f"{v}={c[v]!r}" for c, v in WEAK])
def test_the_procfile_web_refuses_a_weak_setting_in_one_line(changes, variable):
    status, lines = refused(["bash", "-c", web_command()], env_with(changes))
    assert status != 0
    assert len(lines) == 1 and lines[0].startswith("xero-mirror will not start: " + variable), lines


@pytest.mark.parametrize("changes,variable", OTHERS, ids=[v for _, v in OTHERS])
@pytest.mark.parametrize("argv", [[sys.executable, "-m", "worker", "--burst", "--no-ticker"],
                                  [sys.executable, "-m", "webhook.writer", "--socket", "/nonexistent/intake.sock"],
                                  [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"]],
                         ids=["worker", "intake-writer", "flask-cli"])
def test_the_worker_the_intake_writer_and_the_cli_refuse_alike(argv, changes, variable):
    status, lines = refused(argv, {**env_with(changes), "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert status != 0
    assert len(lines) == 1 and lines[0].startswith("xero-mirror will not start: " + variable), lines


def test_the_procfile_sets_production_for_web_and_worker():
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(lines) == {"web", "worker"}
    assert all("APP_ENV=production" in command for command in lines.values())


def test_production_with_strong_settings_serves_and_guards_metrics(database_url, redis_url, tmp_path):
    strong = {**STRONG, "TRUSTED_HOSTS": "127.0.0.1, mirror.example.com"}
    with running_web(database_url, redis_url, tmp_path / "web.log", **strong) as (port, _):
        assert get(f"http://127.0.0.1:{port}/metrics")[0] == 401
        ask = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Authorization": f"Bearer {STRONG['METRICS_TOKEN']}"})
        with urllib.request.urlopen(ask, timeout=5) as answer:
            assert answer.status == 200 and b"xero_mirror_up" in answer.read()
        evil = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refusal:
            urllib.request.urlopen(evil, timeout=5)
        with refusal.value:
            assert refusal.value.code == 400


def test_metrics_public_lets_production_start_without_a_token():
    settings = Settings.from_env({**STRONG, "METRICS_TOKEN": "", "METRICS_PUBLIC": "1"})
    assert settings.production and settings.metrics_public and settings.production_refusal() is None
    with pytest.raises(ConfigError, match="METRICS_PUBLIC"):
        Settings.from_env({**STRONG, "METRICS_PUBLIC": "perhaps"})


def test_outside_production_nothing_is_refused():
    for env in ({}, {"APP_ENV": "development", "SECRET_KEY": "x"}, {"EMBED_FRAME_ANCESTORS": "*"}):
        settings = Settings.from_env(env)
        assert not settings.production and settings.production_refusal() is None
    assert Settings().production_refusal() is None


def test_a_refusal_is_a_config_error_and_a_value_error():
    with pytest.raises(ConfigError, match="^SECRET_KEY must be at least 32 bytes") as refusal:
        Settings.from_env({**STRONG, "SECRET_KEY": "short"})
    assert isinstance(refusal.value, ValueError) and "short" not in str(refusal.value)


# --- TRUSTED_HOSTS and the admin cookie, in the app -------------------------------------------------


@pytest.fixture
def production_app(database_url, redis_url, token_key):
    settings = Settings.from_env({**STRONG, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
                                  "TOKEN_KEYS": token_key, "TRUSTED_HOSTS": "mirror.example.com,.crm.example.com"})
    app = create_app(settings)
    yield app
    close_app(app)


def test_a_host_outside_trusted_hosts_is_400_everywhere(production_app):
    client = production_app.test_client()
    ws = new_workspace(production_app)
    for path, method in (("/healthz", "GET"), ("/admin/sessions", "POST"), ("/admin/xero/connect", "POST"),
                         ("/admin/xero/callback?code=c&state=s", "GET"), ("/api/v1/openapi.json", "GET")):
        for host in ("evil.example", "mirror.example.com.evil.example", "127.0.0.1"):
            answer = client.open(path, method=method, headers={"Host": host, **bearer(ws.admin_key)})
            assert answer.status_code == 400, (path, host, answer.status_code)
    for host in ("mirror.example.com", "eu.crm.example.com"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200


def test_without_public_url_the_admin_link_takes_only_a_trusted_host(database_url, redis_url, token_key):
    app = create_app(Settings(database_url=database_url, redis_url=redis_url, token_keys=(token_key,),
                              secret_key="test-secret-key", trusted_hosts=("mirror.example.com",)))
    try:
        ws = new_workspace(app)
        client = app.test_client()
        answer = client.post("/admin/sessions", headers={"Host": "mirror.example.com", **bearer(ws.admin_key)})
        assert answer.status_code in (200, 201) and answer.get_json()["url"].startswith("http://mirror.example.com/")
        answer = client.post("/admin/sessions", headers={"Host": "evil.example", **bearer(ws.admin_key)})
        assert answer.status_code == 400
    finally:
        close_app(app)


def test_the_admin_cookie_is_secure_in_production_and_behind_https(production_app, database_url, redis_url,
                                                                  token_key):
    assert production_app.config["SESSION_COOKIE_SECURE"] is True
    ws = new_workspace(production_app)
    client = production_app.test_client()
    url = client.post("/admin/sessions", headers={"Host": "mirror.example.com", **bearer(ws.admin_key)}
                      ).get_json()["url"]
    assert url.startswith("https://mirror.example.com/admin/")
    answer = client.get(url)
    cookies = answer.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in cookie for cookie in cookies), cookies
    for public_url, secure in (("", False), ("http://mirror.example.com", False), ("https://mirror.example.com", True)):
        app = create_app(Settings(database_url=database_url, redis_url=redis_url, token_keys=(token_key,),
                                  secret_key="test-secret-key", public_url=public_url))
        try:
            assert app.config["SESSION_COOKIE_SECURE"] is secure, public_url
        finally:
            close_app(app)
