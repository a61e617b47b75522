"""`python -m emulator` starts a seeded server with the documented flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .http import bearer, call

ROOT = Path(__file__).resolve().parents[2]


def test_cli_serves_the_api(tmp_path):
    env = {
        **os.environ,
        "XERO_CLIENT_ID": "CLI-CLIENT",
        "XERO_CLIENT_SECRET": "cli-secret",
        "XERO_WEBHOOK_KEY": "cli-key",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "emulator",
        "--port",
        "0",
        "--seed",
        "4",
        "--tenants",
        "1",
        "--contacts",
        "5",
        "--invoices",
        "12",
        "--webhook-url",
        "http://127.0.0.1:9/none",
        "--latency-ms",
        "0",
        "--limit-minute",
        "30",
        "--error-rate",
        "0",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        banner = [process.stdout.readline() for _ in range(9)]
        url = banner[0].split()[3]
        assert "XERO_CLIENT_ID=CLI-CLIENT" in "".join(banner)
        form = {"grant_type": "client_credentials", "client_id": "CLI-CLIENT", "client_secret": "cli-secret"}
        token = call("POST", f"{url}/connect/token", form=form).json()["access_token"]
        tenant = call("GET", f"{url}/connections", headers=bearer(token)).json()[0]["tenantId"]
        reply = call("GET", f"{url}/api.xro/2.0/Invoices?page=1", headers=bearer(token, tenant))
        assert reply.status == 200 and len(reply.json()["Invoices"]) == 12
        assert reply.headers["X-MinLimit-Remaining"] == "29"
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
