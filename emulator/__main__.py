"""`python -m emulator --port PORT --seed N --tenants T --contacts C --invoices I --webhook-url URL`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from werkzeug.serving import WSGIRequestHandler, make_server

from .app import create_app
from .config import EmulatorConfig, FaultSettings, Limits
from .state import EmulatorState
from .testing import QuietHandler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Xero API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--public-url", default=None, help="base URL clients use (default http://HOST:PORT)")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tenants", type=int, default=2)
    parser.add_argument("--contacts", type=int, default=50, help="contacts per tenant")
    parser.add_argument("--invoices", type=int, default=200, help="invoices per tenant")
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--user-email", default="demo.admin@example.com")
    parser.add_argument("--issuer", default=None, help="iss of issued JWTs (default: this server's URL)")
    parser.add_argument("--webhook-batch-ms", type=int, default=200)
    parser.add_argument("--webhook-retry-window", type=float, default=60.0, help="seconds to keep retrying")
    parser.add_argument("--fault-seed", type=int, default=None)
    parser.add_argument("--quiet", action="store_true", help="no access log lines")
    parser.add_argument(
        "--timezone",
        default=None,
        metavar="ID",
        help="every organisation's Timezone, a Xero TimeZone enum value (default: per seeded profile)",
    )
    parser.add_argument(
        "--merge-keeps-invoice-dates",
        action="store_true",
        help="a contact merge leaves the moved invoices' UpdatedDateUTC alone and sends no INVOICE UPDATE",
    )
    parser.add_argument(
        "--unpaged-line-items",
        action="store_true",
        help="un-paged invoice and credit lists carry LineItems too (Xero's text implies they do not)",
    )
    for limit in fields(Limits):
        names = [f"--limit-{limit.name.replace('_', '-')}"]
        if limit.name == "day":
            names.append("--day-limit")  # every tenant's daily calls (Xero: 1000 Starter, 5000 paid)
        parser.add_argument(*names, type=int, default=limit.default, dest=f"limit_{limit.name}")
    parser.add_argument(
        "--tenant-day-limit",
        action="append",
        default=[],
        metavar="N:DAY",
        help="the Nth seeded tenant (0-based) gets its own daily limit, e.g. 0:1000 (repeatable)",
    )
    for fault in fields(FaultSettings):
        parser.add_argument(
            f"--{fault.name.replace('_', '-')}", type=type(fault.default), default=fault.default
        )
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig.from_env(
        seed=args.seed,
        tenants=args.tenants,
        contacts=args.contacts,
        invoices=args.invoices,
        webhook_url=args.webhook_url,
        user_email=args.user_email,
        issuer=args.issuer,
        webhook_batch_seconds=args.webhook_batch_ms / 1000,
        webhook_retry_window=args.webhook_retry_window,
        fault_seed=args.fault_seed,
        timezone=args.timezone,
        merge_moves_invoices_updated=not args.merge_keeps_invoice_dates,
        unpaged_line_items=args.unpaged_line_items,
        limits=Limits(**{f.name: getattr(args, f"limit_{f.name}") for f in fields(Limits)}),
        faults=FaultSettings(**{f.name: getattr(args, f.name) for f in fields(FaultSettings)}),
    )


def tenant_day_limits(values: list[str]) -> list[tuple[int, int]]:
    """`["0:1000", "2:5000"]` -> [(0, 1000), (2, 5000)]."""
    pairs = []
    for value in values:
        index, sep, day = value.partition(":")
        if not sep:
            raise SystemExit(f"--tenant-day-limit takes INDEX:DAY, not {value!r}")
        pairs.append((int(index), int(day)))
    return pairs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = config_from(args)
    state = EmulatorState(config)
    for index, day in tenant_day_limits(args.tenant_day_limit):
        if not 0 <= index < len(state.tenant_ids):
            raise SystemExit(f"--tenant-day-limit: no tenant {index} (there are {len(state.tenant_ids)})")
        state.set_tenant_limits(state.tenant_ids[index], day=day)
    handler = QuietHandler if args.quiet else WSGIRequestHandler
    server = make_server(args.host, args.port, create_app(state), threaded=True, request_handler=handler)
    url = (args.public_url or f"http://{args.host}:{server.server_port}").rstrip("/")
    state.base_url = url
    print(f"Xero emulator on {url} (seed {config.seed})", flush=True)
    print(f"  XERO_API_URL={url}/api.xro/2.0\n  XERO_IDENTITY_URL={url}\n  XERO_LOGIN_URL={url}")
    print(f"  XERO_CONNECTIONS_URL={url}/connections")
    print(f"  XERO_CLIENT_ID={config.client_id}\n  XERO_CLIENT_SECRET={config.client_secret}")
    print(
        f"  XERO_WEBHOOK_KEY={config.webhook_key}\n  webhook url: {config.webhook_url or '(none: events recorded)'}"
    )
    for tenant in state.tenants():
        print(
            f"  tenant {tenant['tenant_id']} {tenant['name']} {tenant['short_code']} "
            f"{tenant['base_currency']} contacts={tenant['contacts']} invoices={tenant['invoices']} "
            f"day-limit={state.limits.day_limit(tenant['tenant_id'])}"
        )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.close()


if __name__ == "__main__":
    main()
