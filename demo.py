"""`make demo`: the whole system on embedded defaults, against a seeded Xero emulator.

Starts the embedded Redis, the emulator (one organisation, hundreds of customers and
invoices), the web app and a worker with its scheduler; creates a demo workspace connected
to the emulator's organisation and a few CRM records; prints the widget and admin URLs and
the API keys. While it runs, the emulator keeps making believable changes (payments
arrive, invoices are raised, due dates move), each announced by a signed webhook, so the
widget visibly changes. Ctrl-C stops every process it started.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.fernet import Fernet

from infra.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent
VAR = ROOT / "var"
PYTHON = sys.executable


@dataclass
class Stack:
    """The child processes of the demo, each in a session of its own: a Ctrl-C in the terminal
    reaches the demo alone, which stops them in order (`stop`)."""

    var: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(self.var / f"demo-{name}.log", "ab")  # noqa: SIM115 (the child writes to it until Ctrl-C)
        self.processes[name] = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def dead(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop(self, names: list[str], seconds: float) -> None:
        """SIGTERM `names` (their whole groups: the worker's ticker and scheduler too), a second
        SIGTERM a little later (RQ's cold shutdown, for a worker still in the middle of a job), and
        SIGKILL whatever is left after `seconds`."""
        running = [self.processes[n] for n in names if n in self.processes and self.processes[n].poll() is None]
        _signal_groups(running, signal.SIGTERM)
        deadline = time.monotonic() + seconds
        again = time.monotonic() + min(1.4, seconds * 0.75)  # RQ ignores a second signal within a second
        while running and time.monotonic() < deadline:
            time.sleep(0.05)
            running = [p for p in running if p.poll() is None]
            if running and again and time.monotonic() > again:
                _signal_groups(running, signal.SIGTERM)
                again = 0.0
        _signal_groups(running, signal.SIGKILL)
        for name in names:
            if name in self.processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.processes[name].wait(timeout=1)
                _signal_groups([self.processes[name]], signal.SIGKILL)  # anything its group left behind


def _signal_groups(processes: list[subprocess.Popen], sig: int) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)


def http(method: str, url: str, body: dict | None = None, key: str | None = None) -> dict | list:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else {}


def wait_for(url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not come up at {url}; see var/demo-*.log")


def absolute(base: str, url: str) -> str:
    return url if url.startswith(("http://", "https://")) else base + url


CRM_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>CRM stand-in · xero-mirror demo</title>
<style>body{{font:15px system-ui,sans-serif;margin:0;display:flex;min-height:100vh;color:#1f2937}}
nav{{width:240px;background:#1e293b;color:#e2e8f0;padding:16px}}nav a{{color:#e2e8f0;display:block;padding:6px 0}}
main{{flex:1;padding:24px}}aside{{width:400px;border-left:1px solid #e5e7eb;background:#f8fafc}}
iframe{{width:100%;height:100vh;border:0}}h1{{font-size:20px}}</style></head><body>
<nav><b>CRM stand-in</b><p style="font-size:13px;opacity:.8">How a CRM embeds xero-mirror: it asks for a short-lived
embed link with its API key and puts the widget in its sidebar.</p>{links}
<hr><a href="/admin">Xero settings (admin)</a></nav>
<main><h1>{title}</h1><p>{subtitle}</p></main><aside>{frame}</aside></body></html>"""


class CrmStandIn(BaseHTTPRequestHandler):
    """A few lines of 'CRM': record pages with the widget in an iframe, and the admin hand-over."""

    web = ""
    keys: dict[str, str] = {}
    records: list[tuple[str, str, str]] = []

    def do_GET(self) -> None:
        try:
            if self.path == "/admin":
                ticket = http("POST", f"{self.web}/admin/sessions", {}, self.keys["admin"])
                return self._redirect(absolute(self.web, ticket["url"]))
            kind, _, record_id = self.path.strip("/").partition("/")
            match = next((r for r in self.records if (r[0], r[1]) == (kind, record_id)), self.records[0])
            embed = http("POST", f"{self.web}/api/v1/embed-tokens", {"kind": match[0], "id": match[1]},
                         self.keys["read"])
            links = "".join(f'<a href="/{k}/{escape(i)}">{escape(label)}</a>' for k, i, label in self.records)
            page = CRM_PAGE.format(
                links=links, title=escape(match[2]), subtitle=f"{match[0][:-1]} {escape(match[1])}",
                frame=f'<iframe src="{escape(absolute(self.web, embed["url"]))}" title="Xero invoices"></iframe>',
            )
            self._send(200, page.encode())
        except OSError as exc:
            self._send(502, f"xero-mirror is not answering: {exc}".encode())

    def _redirect(self, url: str) -> None:
        self.send_response(302)
        self.send_header("Location", url)
        self.end_headers()

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


ENV_HEADER = """\
# `make demo`'s settings, API keys and ids, kept across restarts (`make demo-reset` wipes var/demo*).
# Point a shell at the running demo, from the repository root:  set -a; . var/demo.env; set +a
# then e.g.  .venv/bin/flask --app wsgi ops status
"""
SECRETS = ("XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "XERO_WEBHOOK_KEY", "TOKEN_KEYS", "SECRET_KEY")
KEYS = ("DEMO_WORKSPACE_ID", "DEMO_TENANT_ID", "DEMO_ADMIN_KEY", "DEMO_READ_KEY")


@dataclass(frozen=True)
class Files:
    """Where the demo keeps its state: var/ (DEMO_VAR elsewhere), every name starting `demo`."""

    var: Path

    @property
    def env(self) -> Path:
        return self.var / "demo.env"  # settings, secrets, API keys: what a shell sources

    @property
    def state(self) -> Path:
        return self.var / "demo-state.json"  # the seed, the tenant, the CRM records made

    @property
    def journal(self) -> Path:
        return self.var / "demo-activity.jsonl"  # every change made in 'Xero', replayed on restart

    @property
    def database(self) -> Path:
        return self.var / "demo.db"

    @property
    def pid(self) -> Path:
        return self.var / "demo.pid"

    @property
    def redis(self) -> Path:
        return self.var / "demo-redis"

    def shown(self, path: Path) -> str:
        """`path` as typed from the repository root (where `make demo` runs)."""
        return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)

    def everything(self) -> list[Path]:
        return sorted(self.var.glob("demo*"))


def read_env(path: Path) -> dict[str, str]:
    """A demo.env as written by `write_env` (KEY=value lines, values shell-quoted)."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name.strip()] = (shlex.split(value) or [""])[0]
    return values


def write_env(path: Path, values: dict[str, str]) -> None:
    """Written whole and then renamed, readable by its owner only (it holds the keys)."""
    text = ENV_HEADER + "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items() if v)
    partial = path.with_name(path.name + ".new")
    partial.write_text(text)
    partial.chmod(0o600)
    partial.replace(path)


def new_secrets() -> dict[str, str]:
    return {
        "XERO_CLIENT_ID": "xero-mirror-demo",
        "XERO_CLIENT_SECRET": Fernet.generate_key().decode()[:32],
        "XERO_WEBHOOK_KEY": Fernet.generate_key().decode()[:40],
        "TOKEN_KEYS": Fernet.generate_key().decode(),
        "SECRET_KEY": Fernet.generate_key().decode(),
    }


def flask(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # a session of its own: a Ctrl-C meanwhile reaches the demo alone
        [PYTHON, "-m", "flask", "--app", "wsgi", *args], env=env, cwd=ROOT, capture_output=True, text=True,
        start_new_session=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


# --- before starting: ports and a demo already running --------------------------------------

def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def who_listens(port: int) -> str | None:
    """The process listening on `port`, as 'pid N (command)', from /proc; None if we cannot tell."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return f"pid {proc.name} ({command[:100]})"
    return "a process of another user"


def running_demo(files: Files) -> int | None:
    """The pid of a demo running on these files, if one is."""
    try:
        pid = int(files.pid.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):  # a demo killed outright left its pid file: is that pid still a demo?
        if b"demo" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    return pid if pid != os.getpid() else None


def ports_taken(ports: dict[str, tuple[int, str]]) -> list[str]:
    """One line per port in use: which of ours, taken by what, and how to choose another."""
    problems = []
    for what, (port, variable) in ports.items():
        if not port_free(port):
            by = who_listens(port)
            problems.append(f"port {port} ({what}) is taken{f' by {by}' if by else ''}: stop it, or choose "
                            f"another port: {variable}=NNNN make demo")
    return problems


# --- the emulator's changes, journalled so a restart can make them again ----------------------

class Journal:
    """The changes made in the emulator (whose state lives in memory), in order. Seeded alike, the
    emulator makes the same ids for the same calls in the same order, so replaying them on a
    restart gives back the organisation the mirror, the pins and the CRM's links knew."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def call(self, control: str, method: str, path: str, body: dict) -> None:
        http(method, control + path, body)
        with self.lock, self.path.open("a") as out:
            out.write(json.dumps({"method": method, "path": path, "body": body}) + "\n")

    def replay(self, control: str) -> tuple[int, str | None]:
        """Make every journalled change again; (how many, the first failure or None)."""
        done = 0
        for entry in self.entries():
            try:
                http(entry["method"], control + entry["path"], entry["body"])
            except (OSError, ValueError) as exc:
                return done, f"{entry['method']} {entry['path']}: {exc}"
            done += 1
        return done, None


def activity(control: str, tenant: str, contact_ids: list[str], stop: threading.Event, seed: str,
             journal: Journal) -> None:
    """Believable changes, every few seconds, each one a signed webhook from the emulator."""
    rng = random.Random(seed)
    while not stop.wait(rng.uniform(3, 6)):
        try:
            snap = http("GET", f"{control}/tenants/{tenant}/snapshot")
            mine = [i for i in snap["Invoices"] if i["Contact"]["ContactID"] in contact_ids]
            open_ = [i for i in mine if i["Status"] == "AUTHORISED" and Decimal(str(i["AmountDue"])) > 0]
            roll = rng.random()
            if open_ and roll < 0.6:
                inv = rng.choice(open_)
                due = Decimal(str(inv["AmountDue"]))
                amount = due if rng.random() < 0.4 else (due / rng.choice([2, 3, 4])).quantize(Decimal("0.01"))
                journal.call(control, "POST", f"/tenants/{tenant}/invoices/{inv['InvoiceID']}/payments",
                             {"amount": str(amount), "reference": f"Demo payment {rng.randint(1000, 9999)}"})
            elif roll < 0.85:
                today = date.today()
                journal.call(control, "POST", f"/tenants/{tenant}/invoices", {
                    "contact_id": rng.choice(contact_ids),
                    "total": str(Decimal(rng.randint(5_000, 500_000)) / 100),
                    "currency": rng.choice(["NZD", "NZD", "USD", "AUD"]),
                    "date": today.isoformat(),
                    "due_date": (today + timedelta(days=rng.choice([7, 14, 30]))).isoformat(),
                })
            elif open_:
                inv = rng.choice(open_)
                moved = date.today() + timedelta(days=rng.randint(-10, 20))
                journal.call(control, "PATCH", f"/tenants/{tenant}/invoices/{inv['InvoiceID']}",
                             {"due_date": moved.isoformat()})
        except (OSError, ValueError, KeyError) as exc:
            if not stop.is_set():
                print(f"  (activity skipped a beat: {exc})", flush=True)


def crm_records(api: str, key: str, snapshot: dict) -> list[tuple[str, str, str]]:
    """A few CRM records matched to the emulator's customers: contacts by email, an account
    holding two of them, a deal pinned to some invoices. Returns (kind, id, label)."""
    customers = [c for c in snapshot["Contacts"] if c.get("IsCustomer") and c.get("EmailAddress")]
    invoices_by_contact: dict[str, list[dict]] = {}
    for inv in snapshot["Invoices"]:
        invoices_by_contact.setdefault(inv["Contact"]["ContactID"], []).append(inv)
    busiest = sorted(customers, key=lambda c: -len(invoices_by_contact.get(c["ContactID"], [])))[:3]
    records = []
    for n, c in enumerate(busiest, 1):
        body = {"name": c["Name"], "email": c["EmailAddress"].upper() if n == 2 else c["EmailAddress"]}
        if n > 1:
            body["account_id"] = "acct-1"
        http("PUT", f"{api}/contacts/crm-contact-{n}", body, key)
        records.append(("contacts", f"crm-contact-{n}", c["Name"]))
    http("PUT", f"{api}/accounts/acct-1", {"name": "Demo account (two contacts)"}, key)
    records.append(("accounts", "acct-1", "Demo account"))
    deal_invoices = [i["InvoiceID"] for i in invoices_by_contact.get(busiest[0]["ContactID"], [])[:3]]
    http("PUT", f"{api}/deals/deal-1", {"name": "Demo deal", "invoice_ids": deal_invoices}, key)
    records.append(("deals", "deal-1", "Demo deal"))
    return records



def reset(files: Files) -> int:
    """`make demo-reset`: remove every var/demo* file, so the next `make demo` starts afresh."""
    pid = running_demo(files)
    if pid:
        print(f"a demo is running (pid {pid}): stop it (Ctrl-C) first", file=sys.stderr)
        return 1
    state = json.loads(files.state.read_text()) if files.state.exists() else {}
    gone = files.everything()
    for path in gone:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    print(f"removed {len(gone)} demo files from {files.shown(files.var)}/; the next `make demo` starts afresh")
    if state.get("database_given"):
        print("the demo's workspace stays in your DATABASE_URL's database (not the demo's own)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", 8000)))
    parser.add_argument("--crm-port", type=int, default=int(os.environ.get("DEMO_CRM_PORT", 8001)))
    parser.add_argument("--emulator-port", type=int, default=int(os.environ.get("DEMO_EMULATOR_PORT", 5055)))
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("DEMO_REDIS_PORT", 6390)))
    parser.add_argument("--var", type=Path, default=Path(os.environ.get("DEMO_VAR") or VAR),
                        help="where the demo keeps its state (default var/)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--invoices", type=int, default=1500)
    parser.add_argument("--no-activity", action="store_true", help="no simulated changes in Xero")
    parser.add_argument("--exit-after-setup", action="store_true", help="stop once the URLs are printed")
    parser.add_argument("--reset", action="store_true", help="remove the demo's state (var/demo*) and exit")
    args = parser.parse_args(argv)
    files = Files(args.var.resolve())
    # Ctrl-C (even when a shell started us with SIGINT ignored) and SIGTERM stop the demo; the
    # children, in sessions of their own, hear neither: the demo stops them in order
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.reset:
            return reset(files)
        return Demo(args, files).run()
    except KeyboardInterrupt:
        return 0


class Demo:
    def __init__(self, args: argparse.Namespace, files: Files) -> None:
        self.args, self.files = args, files
        self.web = f"http://127.0.0.1:{args.port}"
        self.emu = f"http://127.0.0.1:{args.emulator_port}"
        self.crm = f"http://127.0.0.1:{args.crm_port}"
        self.stack = Stack(files.var)
        self.stop = threading.Event()
        self.redis_server: RedisServer | None = None
        self.crm_server: ThreadingHTTPServer | None = None
        self.journal = Journal(files.journal)

    def run(self) -> int:
        args, files = self.args, self.files
        files.var.mkdir(parents=True, exist_ok=True)
        pid = running_demo(files)
        if pid:
            print(f"a demo is already running on {files.shown(files.var)}/ (pid {pid})", file=sys.stderr)
            return 1
        previous = read_env(files.env)

        def given(name: str) -> str:  # the caller's own, not one a sourced var/demo.env left in the shell
            value = os.environ.get(name, "").strip()
            return value if value and value != previous.get(name) else ""

        database_url = given("DATABASE_URL") or f"sqlite:///{files.database}"
        redis_url = given("REDIS_URL")
        ports = {"the web app": (args.port, "DEMO_PORT"), "the CRM stand-in": (args.crm_port, "DEMO_CRM_PORT"),
                 "the Xero emulator": (args.emulator_port, "DEMO_EMULATOR_PORT")}
        if not redis_url:
            ports["Redis"] = (args.redis_port, "DEMO_REDIS_PORT")
        if problems := ports_taken(ports):
            print("make demo cannot start:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        files.pid.write_text(str(os.getpid()))
        try:
            return self._run(previous, database_url, redis_url)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._shut_down()
            files.pid.unlink(missing_ok=True)
            print(f"demo stopped; its state stays in {files.shown(files.var)}/ (make demo-reset starts afresh)",
                  flush=True)

    def _shut_down(self) -> None:
        """Web and worker first, while Redis and the emulator still answer them; under 3 seconds."""
        self.stop.set()
        if self.crm_server is not None:
            self.crm_server.server_close()
        self.stack.stop(["web", "worker"], seconds=1.7)
        redis = self.redis_server.process if self.redis_server is not None else None
        if redis is not None:
            redis.terminate()
        self.stack.stop(["emulator"], seconds=0.3)
        if redis is not None:
            try:
                redis.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                redis.kill()

    def _run(self, previous: dict[str, str], database_url: str, redis_url: str) -> int:
        args, files, web, emu = self.args, self.files, self.web, self.emu
        state = json.loads(files.state.read_text()) if files.state.exists() else None
        sqlite_ours = database_url == f"sqlite:///{files.database}"
        resume = (state is not None and previous.get("DATABASE_URL") == database_url
                  and (not sqlite_ours or files.database.exists()))
        seed = state["seed"] if resume and state else {"seed": args.seed, "contacts": args.contacts,
                                                         "invoices": args.invoices}
        secrets_ = {k: previous[k] for k in SECRETS if previous.get(k)} if resume else {}
        if set(secrets_) != set(SECRETS):
            secrets_ = new_secrets()
        env = dict(os.environ)
        env.update(secrets_)
        if not redis_url:
            files.redis.mkdir(exist_ok=True)
            self.redis_server = RedisServer(port=args.redis_port, workdir=files.redis, new_session=True).start()
            redis_url = self.redis_server.url
        settings = {
            "DATABASE_URL": database_url, "REDIS_URL": redis_url, **secrets_,
            "XERO_API_URL": f"{emu}/api.xro/2.0", "XERO_IDENTITY_URL": emu, "XERO_LOGIN_URL": emu,
            "XERO_CONNECTIONS_URL": f"{emu}/connections", "PUBLIC_URL": web,
        }
        env.update(settings)
        env["PYTHONUNBUFFERED"] = "1"
        # backfill jobs of a second at most: a Ctrl-C finds the worker between jobs within one,
        # so it stops warm (RQ's cold shutdown would abandon a job half done)
        env.setdefault("BACKFILL_SLICE_SECONDS", "1")
        print(f"Redis      {redis_url}", flush=True)

        self.stack.start("emulator", [
            PYTHON, "-m", "emulator", "--port", str(args.emulator_port), "--seed", str(seed["seed"]),
            "--tenants", "1", "--contacts", str(seed["contacts"]), "--invoices", str(seed["invoices"]),
            "--webhook-url", f"{web}/webhooks/xero", "--quiet",
        ], env)
        wait_for(f"{emu}/_emulator/health", "the emulator")
        tenant = http("GET", f"{emu}/_emulator/tenants")[0]
        if resume and state and state.get("tenant_id") != tenant["tenant_id"]:
            print("  (the emulator's organisation is not the one var/ knows: starting afresh)", flush=True)
            resume = False
        if not resume:
            if sqlite_ours:
                for stale in files.var.glob("demo.db*"):
                    stale.unlink()
            files.state.unlink(missing_ok=True)
            files.journal.unlink(missing_ok=True)
            state = None
        write_env(files.env, {**settings, **({k: previous.get(k, "") for k in KEYS} if resume else {})})
        print(f"Emulator   {emu}   (Xero's API, OAuth and webhooks)", flush=True)

        flask(env, "db", "upgrade")
        self.stack.start("web", [PYTHON, "-m", "flask", "--app", "wsgi", "run", "--port", str(args.port)], env)
        self.stack.start("worker", [PYTHON, "-m", "worker"], env)
        wait_for(f"{web}/api/v1/openapi.json", "the web app")

        keys = None
        if resume and state:
            replayed, failure = self.journal.replay(f"{emu}/_emulator")
            if failure:
                print(f"  (replayed {replayed} changes to 'Xero', then: {failure}; the mirror may show invoices "
                      "'Xero' no longer has: make demo-reset starts afresh)", flush=True)
            keys = self._kept_keys(previous, env)
        if keys is None:
            state = self._set_up(env, tenant)
            keys = {k: state.pop(k) for k in KEYS}
        write_env(files.env, {**settings, **keys})
        files.state.write_text(json.dumps(state, indent=2))
        assert state is not None
        records = [tuple(r) for r in state["records"]]
        admin_key, read_key = keys["DEMO_ADMIN_KEY"], keys["DEMO_READ_KEY"]

        CrmStandIn.web, CrmStandIn.keys, CrmStandIn.records = web, {"admin": admin_key, "read": read_key}, records
        self.crm_server = ThreadingHTTPServer(("127.0.0.1", args.crm_port), CrmStandIn)
        threading.Thread(target=self.crm_server.serve_forever, daemon=True).start()
        self._print_banner(tenant, keys, records)
        if args.exit_after_setup:
            return 0

        if not args.no_activity:
            threading.Thread(target=activity, daemon=True, args=(
                f"{emu}/_emulator", tenant["tenant_id"], state["linked_contacts"], self.stop,
                f"{seed['seed']}:{len(self.journal.entries())}", self.journal)).start()
        while not self.stop.wait(1):
            if dead := self.stack.dead():
                print(f"{', '.join(dead)} stopped unexpectedly; see {files.shown(files.var)}/demo-{dead[0]}.log",
                      file=sys.stderr)
                return 1
        return 0

    def _kept_keys(self, previous: dict[str, str], env: dict[str, str]) -> dict[str, str] | None:
        """The API keys of the last run, if they still open the workspace; its connection made
        good (reconnected if it is gone) and resynced, so the mirror matches the replayed 'Xero'."""
        if not all(previous.get(k) for k in KEYS):
            return None
        try:
            page = http("GET", f"{self.web}/admin/xero", key=previous["DEMO_ADMIN_KEY"])
        except urllib.error.HTTPError as exc:
            print(f"  (the API keys in var/ no longer open a workspace ({exc.code}): making a new one)", flush=True)
            return None
        assert isinstance(page, dict)
        connection = page.get("connection") or {}
        if connection.get("status") != "active" or connection.get("tenant_id") != previous["DEMO_TENANT_ID"]:
            flask(env, "xero", "connect-client-credentials", "--workspace", previous["DEMO_WORKSPACE_ID"])
        else:
            flask(env, "ops", "resync", previous["DEMO_TENANT_ID"])  # dates follow today; the replay's changes
        print(f"Kept       workspace {previous['DEMO_WORKSPACE_ID']}, its API keys, links and pins "
              f"({self.files.shown(self.files.var)}/)", flush=True)
        return {k: previous[k] for k in KEYS}

    def _set_up(self, env: dict[str, str], tenant: dict) -> dict:
        """A new workspace connected to the emulator's organisation, with a few CRM records."""
        created = json.loads(flask(env, "workspace", "create", "Demo workspace", "--json"))
        admin_key, read_key = created["admin_key"], created["read_key"]
        flask(env, "xero", "connect-client-credentials", "--workspace", str(created["workspace_id"]))
        snapshot = http("GET", f"{self.emu}/_emulator/tenants/{tenant['tenant_id']}/snapshot")
        assert isinstance(snapshot, dict)
        records = crm_records(f"{self.web}/api/v1", admin_key, snapshot)
        linked = [c["ContactID"] for c in snapshot["Contacts"] if any(c["Name"] == label for _, _, label in records)]
        return {
            "seed": {"seed": self.args.seed, "contacts": self.args.contacts, "invoices": self.args.invoices},
            "tenant_id": tenant["tenant_id"], "records": records, "linked_contacts": linked,
            "database_given": not env["DATABASE_URL"].endswith(str(self.files.database)),
            "DEMO_WORKSPACE_ID": str(created["workspace_id"]), "DEMO_TENANT_ID": tenant["tenant_id"],
            "DEMO_ADMIN_KEY": admin_key, "DEMO_READ_KEY": read_key,
        }

    def _print_banner(self, tenant: dict, keys: dict[str, str], records: list) -> None:
        web, files = self.web, self.files
        read_key = keys["DEMO_READ_KEY"]
        print(f"\nxero-mirror demo: {web}   organisation: {tenant['name']} ({tenant['tenant_id']})\n")
        print(f"  API keys   admin {keys['DEMO_ADMIN_KEY']}\n             read  {read_key}")
        for kind, record_id, label in records:
            embed = http("POST", f"{web}/api/v1/embed-tokens", {"kind": kind, "id": record_id}, read_key)
            assert isinstance(embed, dict)
            print(f"  widget     {absolute(web, embed['url'])}\n"
                  f"             ({kind[:-1]} {record_id}: {label}; link valid 1 hour)")
        print(f"  CRM        {self.crm}/   (a stand-in CRM page: widgets and the admin page, fresh links each visit)")
        print(f"  API        curl -H 'Authorization: Bearer {read_key}' {web}/api/v1/contacts/crm-contact-1/summary")
        print(f"  commands   set -a; . {files.shown(files.env)}; set +a   (in another shell, in {ROOT}: then the\n"
              f"             README's commands work against this demo, e.g. .venv/bin/flask --app wsgi ops status)")
        print(f"\nThe backfill runs in the worker; changes in 'Xero' arrive by webhook. State is kept in "
              f"{files.shown(files.var)}/ (make demo-reset wipes it). Ctrl-C stops everything.\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
