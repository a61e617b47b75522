"""The operator's commands, typed in a shell (`flask --app wsgi ...` in its own process), when what
they need is not there: one line saying what to do, status 1, and nothing created. And what
they print when all is well: no warning about a SECRET_KEY they do not need; and `flask run`'s
request log, JSON with no terminal colour codes in it.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from infra.redis_server import free_port
from store.migrate import upgrade
from tests.e2e.test_demo import clean_env
from tests.e2e.worker_process import ROOT

NEEDS_THE_DATABASE = [
    ("ops", "status"),
    ("ops", "status", "--json"),
    ("ops", "replay", "--state", "pending", "--dry-run"),
    ("ops", "resync", "some-tenant"),
    ("workspace", "create", "Acme"),
    ("workspace", "keys", "list", "--workspace", "1"),
    ("workspace", "keys", "issue", "--workspace", "1", "--role", "read"),
    ("workspace", "keys", "revoke", "3"),
    ("tokens", "rotate"),
    ("xero", "connect-client-credentials", "--workspace", "1"),
]


def flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def one_line(done: subprocess.CompletedProcess) -> str:
    """The command failed with one line on stderr, and said nothing else."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


@pytest.mark.parametrize("command", NEEDS_THE_DATABASE, ids=" ".join)
def test_a_missing_sqlite_database_is_one_line_and_is_not_created(tmp_path, command):
    path = tmp_path / "nowhere.db"
    line = one_line(flask(clean_env(DATABASE_URL=f"sqlite:///{path}", REDIS_URL="redis://127.0.0.1:1/0"), *command))
    assert f"no database at {path}" in line and "flask --app wsgi db upgrade" in line
    assert "set -a; . var/demo.env; set +a" in line  # the way to the demo's database
    assert list(tmp_path.iterdir()) == []  # no empty database file left behind, no WAL


@pytest.mark.parametrize("command", [("ops", "status"), ("workspace", "keys", "list", "--workspace", "1")],
                         ids=" ".join)
def test_a_database_without_the_schema_says_to_upgrade_and_stays_as_it_was(tmp_path, command):
    path = tmp_path / "empty.db"
    path.touch()  # what `ops status` used to leave behind
    line = one_line(flask(clean_env(DATABASE_URL=f"sqlite:///{path}"), *command))
    assert line == f"Error: the database at {path} has no schema: run `flask --app wsgi db upgrade`"
    assert path.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_a_database_at_an_older_schema_says_to_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0005")
    line = one_line(flask(clean_env(DATABASE_URL=url), "ops", "status"))
    assert "is at schema 0005, this code needs" in line and "flask --app wsgi db upgrade" in line
    upgrade(url)
    assert flask(clean_env(DATABASE_URL=url), "ops", "status").returncode == 0


@pytest.mark.parametrize("command", [("ops", "status"), ("db", "upgrade"), ("workspace", "create", "Acme")],
                         ids=" ".join)
def test_an_unreachable_database_server_is_one_line_without_its_password(command):
    url = f"postgresql://mirror:s3cret-pw@127.0.0.1:{free_port()}/mirror"  # nothing listens there
    line = one_line(flask(clean_env(DATABASE_URL=url), *command))
    assert "cannot reach the database at postgresql://mirror:***@127.0.0.1" in line
    assert "check DATABASE_URL" in line and "s3cret-pw" not in line


@pytest.mark.parametrize("command", [("ops", "failed"), ("ops", "resync", "some-tenant"),
                                     ("ops", "failed", "--requeue-all")], ids=" ".join)
def test_an_unreachable_redis_is_one_line(database_url, command):
    url = f"redis://:r3dis-pw@127.0.0.1:{free_port()}/0"
    line = one_line(flask(clean_env(DATABASE_URL=database_url, REDIS_URL=url), *command))
    assert "cannot reach Redis at redis://:***@127.0.0.1" in line and "check REDIS_URL" in line
    assert "r3dis-pw" not in line


def test_commands_that_need_redis_say_when_it_is_not_set(database_url):
    line = one_line(flask(clean_env(DATABASE_URL=database_url), "ops", "failed"))
    assert "REDIS_URL is not set" in line


def test_ops_status_with_redis_down_still_shows_the_database_and_says_so(database_url):
    done = flask(clean_env(DATABASE_URL=database_url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"),
                 "ops", "status")
    assert done.returncode == 0, done.stderr
    assert "WARNING Redis is unreachable" in done.stdout and done.stderr == ""


def test_a_malformed_job_id_is_a_message_not_a_traceback(database_url, redis_url):
    done = flask(clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url),
                 "ops", "failed", "--requeue", "sync-8330550f-...-1d2e3f4a5b6c")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no job sync-8330550f-...-1d2e3f4a5b6c (see `ops failed`)" in done.stderr


@pytest.mark.parametrize("command", [("--help",), ("ops", "--help"), ("ops", "status", "--help"), ("ops", "status")],
                         ids=" ".join)
def test_commands_that_need_no_secret_warn_about_none(database_url, command):
    done = flask(clean_env(DATABASE_URL=database_url), *command)  # no SECRET_KEY, no TOKEN_KEYS
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_request_log_of_flask_run_is_json_without_colour_codes(database_url, tmp_path):
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        web = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(port)],
                               cwd=ROOT, env=clean_env(DATABASE_URL=database_url), stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:  # 404 and 401: werkzeug styles both (yellow, bold red)
                urllib.request.urlopen(f"{base}/no-such-page", timeout=2)
            except urllib.error.HTTPError:
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/api/v1/contacts/c-1/invoices", timeout=5)
        time.sleep(0.3)
    finally:
        web.terminate()
        web.wait(timeout=10)
    text = log.read_text()
    assert "\x1b" not in text and "\\u001b" not in text  # JSON writes ESC as \u001b
    requests = [json.loads(line) for line in text.splitlines() if '"logger": "werkzeug"' in line and "GET /" in line]
    assert all("\x1b" not in r["message"] for r in requests)
    assert any("/no-such-page" in r["message"] and " 404 " in r["message"] for r in requests), text
    assert any("/api/v1/contacts/c-1/invoices" in r["message"] and " 401 " in r["message"] for r in requests), text
    # without SECRET_KEY the warning is said once the app serves, not by every command
    assert sum("SECRET_KEY is not set" in line for line in text.splitlines()) == 1


def test_db_upgrade_still_creates_a_new_sqlite_database(tmp_path):
    path = tmp_path / "new.db"
    done = flask(clean_env(DATABASE_URL=f"sqlite:///{path}"), "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert path.exists()
    assert flask(clean_env(DATABASE_URL=f"sqlite:///{path}"), "ops", "status").returncode == 0
