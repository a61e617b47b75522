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
import json
import os
import random
import signal
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

from infra.redis_server import start_embedded

ROOT = Path(__file__).resolve().parent
VAR = ROOT / "var"
PYTHON = sys.executable


@dataclass
class Stack:
    """The child processes of the demo; stopping it stops all of them."""

    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(VAR / f"demo-{name}.log", "ab")  # noqa: SIM115 (the child writes to it until Ctrl-C)
        self.processes[name] = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def dead(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def stop(self) -> None:
        for p in self.processes.values():
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 10
        for p in self.processes.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


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


def secrets_env() -> dict[str, str]:
    """Demo credentials, made once and kept in var/demo.env so restarts reuse them."""
    path = VAR / "demo.env"
    if not path.exists():
        values = {
            "XERO_CLIENT_ID": "xero-mirror-demo",
            "XERO_CLIENT_SECRET": Fernet.generate_key().decode()[:32],
            "XERO_WEBHOOK_KEY": Fernet.generate_key().decode()[:40],
            "TOKEN_KEYS": Fernet.generate_key().decode(),
            "SECRET_KEY": Fernet.generate_key().decode(),
        }
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def flask(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "-m", "flask", "--app", "wsgi", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


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


def activity(control: str, tenant: str, contact_ids: list[str], stop: threading.Event, seed: int) -> None:
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
                http("POST", f"{control}/tenants/{tenant}/invoices/{inv['InvoiceID']}/payments",
                     {"amount": str(amount), "reference": f"Demo payment {rng.randint(1000, 9999)}"})
            elif roll < 0.85:
                today = date.today()
                http("POST", f"{control}/tenants/{tenant}/invoices", {
                    "contact_id": rng.choice(contact_ids),
                    "total": str(Decimal(rng.randint(5_000, 500_000)) / 100),
                    "currency": rng.choice(["NZD", "NZD", "USD", "AUD"]),
                    "date": today.isoformat(),
                    "due_date": (today + timedelta(days=rng.choice([7, 14, 30]))).isoformat(),
                })
            elif open_:
                inv = rng.choice(open_)
                moved = date.today() + timedelta(days=rng.randint(-10, 20))
                http("PATCH", f"{control}/tenants/{tenant}/invoices/{inv['InvoiceID']}",
                     {"due_date": moved.isoformat()})
        except (OSError, ValueError, KeyError) as exc:
            print(f"  (activity skipped a beat: {exc})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", 8000)))
    parser.add_argument("--crm-port", type=int, default=int(os.environ.get("DEMO_CRM_PORT", 8001)))
    parser.add_argument("--emulator-port", type=int, default=int(os.environ.get("DEMO_EMULATOR_PORT", 5055)))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--invoices", type=int, default=1500)
    parser.add_argument("--no-activity", action="store_true", help="no simulated changes in Xero")
    parser.add_argument("--exit-after-setup", action="store_true", help="stop once the URLs are printed")
    args = parser.parse_args(argv)

    VAR.mkdir(exist_ok=True)
    for stale in VAR.glob("demo.db*"):
        stale.unlink()
    web = f"http://127.0.0.1:{args.port}"
    emu = f"http://127.0.0.1:{args.emulator_port}"
    crm = f"http://127.0.0.1:{args.crm_port}"
    stack, stop = Stack(), threading.Event()
    redis_server = None
    try:
        env = dict(os.environ)
        env.update(secrets_env())
        env.update({
            "DATABASE_URL": env.get("DATABASE_URL") or f"sqlite:///{VAR / 'demo.db'}",
            "XERO_API_URL": f"{emu}/api.xro/2.0",
            "XERO_IDENTITY_URL": emu,
            "XERO_LOGIN_URL": emu,
            "XERO_CONNECTIONS_URL": f"{emu}/connections",
            "PUBLIC_URL": web,
            "PYTHONUNBUFFERED": "1",
        })
        if not env.get("REDIS_URL"):
            redis_server = start_embedded(workdir=VAR)
            env["REDIS_URL"] = redis_server.url
        print(f"Redis      {env['REDIS_URL']}", flush=True)

        flask(env, "db", "upgrade")
        stack.start("emulator", [
            PYTHON, "-m", "emulator", "--port", str(args.emulator_port), "--seed", str(args.seed),
            "--tenants", "1", "--contacts", str(args.contacts), "--invoices", str(args.invoices),
            "--webhook-url", f"{web}/webhooks/xero", "--quiet",
        ], env)
        stack.start("web", [PYTHON, "-m", "flask", "--app", "wsgi", "run", "--port", str(args.port)], env)
        stack.start("worker", [PYTHON, "-m", "worker"], env)
        wait_for(f"{emu}/_emulator/health", "the emulator")
        wait_for(f"{web}/api/v1/openapi.json", "the web app")
        print(f"Emulator   {emu}   (Xero's API, OAuth and webhooks)", flush=True)

        created = json.loads(flask(env, "workspace", "create", "Demo workspace", "--json"))
        admin_key, read_key = created["admin_key"], created["read_key"]
        flask(env, "xero", "connect-client-credentials", "--workspace", str(created["workspace_id"]))
        tenant = http("GET", f"{emu}/_emulator/tenants")[0]
        snapshot = http("GET", f"{emu}/_emulator/tenants/{tenant['tenant_id']}/snapshot")
        records = crm_records(f"{web}/api/v1", admin_key, snapshot)
        CrmStandIn.web, CrmStandIn.keys, CrmStandIn.records = web, {"admin": admin_key, "read": read_key}, records
        crm_server = ThreadingHTTPServer(("127.0.0.1", args.crm_port), CrmStandIn)
        threading.Thread(target=crm_server.serve_forever, daemon=True).start()

        print(f"\nxero-mirror demo: {web}   organisation: {tenant['name']}\n")
        print(f"  API keys   admin {admin_key}\n             read  {read_key}")
        for kind, record_id, label in records:
            embed = http("POST", f"{web}/api/v1/embed-tokens", {"kind": kind, "id": record_id}, read_key)
            print(f"  widget     {absolute(web, embed['url'])}\n"
                  f"             ({kind[:-1]} {record_id}: {label}; link valid 1 hour)")
        print(f"  CRM        {crm}/   (a stand-in CRM page: widgets and the admin page, fresh links each visit)")
        print(f"  API        curl -H 'Authorization: Bearer {read_key}' {web}/api/v1/contacts/crm-contact-1/summary")
        print("\nThe backfill runs in the worker; changes in 'Xero' arrive by webhook. Ctrl-C stops everything.\n",
              flush=True)
        if args.exit_after_setup:
            return 0

        if not args.no_activity:
            linked = [c["ContactID"] for c in snapshot["Contacts"]
                      if any(c["Name"] == label for _, _, label in records)]
            threading.Thread(target=activity, args=(f"{emu}/_emulator", tenant["tenant_id"], linked, stop, args.seed),
                             daemon=True).start()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(1):
            if dead := stack.dead():
                print(f"{', '.join(dead)} stopped unexpectedly; see var/demo-{dead[0]}.log", file=sys.stderr)
                return 1
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        stack.stop()
        if redis_server:
            redis_server.stop()
        print("demo stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
