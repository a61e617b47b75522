"""The control API under /_emulator/: mutate the books, read counts, set faults and limits (JSON)."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, Response, current_app, jsonify, request

from .books import NotFound
from .ledger import LedgerError
from .xero_json import encode

bp = Blueprint("control", __name__, url_prefix="/_emulator")


def emulator():
    return current_app.extensions["emulator"]


def _body() -> dict:
    return request.get_json(silent=True) or {}


def controlled(view):
    """JSON in, JSON out; unknown records are 404, refused changes 400."""

    @wraps(view)
    def wrapper(**kwargs):
        try:
            result = view(**kwargs)
        except NotFound as exc:
            return jsonify(error=str(exc.args[0] if exc.args else exc)), 404
        except (LedgerError, ValueError, TypeError, KeyError) as exc:
            return jsonify(error=str(exc)), 400
        if isinstance(result, Response):
            return result
        return Response(encode(result), content_type="application/json")

    return wrapper


@bp.get("/health")
@controlled
def health():
    return {"ok": True, "tenants": len(emulator().books)}


@bp.get("/tenants")
@controlled
def tenants():
    return emulator().tenants()


@bp.get("/tenants/<tenant_id>/snapshot")
@controlled
def snapshot(tenant_id):
    return emulator().snapshot(tenant_id)


@bp.post("/tenants/<tenant_id>/contacts")
@controlled
def create_contact(tenant_id):
    return emulator().create_contact(tenant_id, **_body())


@bp.patch("/tenants/<tenant_id>/contacts/<contact_id>")
@controlled
def update_contact(tenant_id, contact_id):
    return emulator().update_contact(tenant_id, contact_id, **_body())


@bp.post("/tenants/<tenant_id>/contacts/<contact_id>/merge")
@controlled
def merge_contacts(tenant_id, contact_id):
    """{"into": survivor ContactID}."""
    body = _body()
    if not body.get("into"):
        raise ValueError('merge takes {"into": ContactID}')
    return emulator().merge_contacts(tenant_id, contact_id, body["into"])


@bp.put("/tenants/<tenant_id>/organisation")
@bp.patch("/tenants/<tenant_id>/organisation")
@controlled
def set_organisation(tenant_id):
    """{"timezone": TimeZone enum value[, "allow_unknown": true]}."""
    body = _body()
    unknown = set(body) - {"timezone", "allow_unknown"}
    if unknown or "timezone" not in body:
        raise ValueError(f"organisation takes timezone and allow_unknown (got {sorted(body)})")
    return emulator().set_timezone(tenant_id, body["timezone"], allow_unknown=bool(body.get("allow_unknown")))


@bp.get("/tenants/<tenant_id>/credit-notes/<credit_note_id>")
@controlled
def get_credit_note(tenant_id, credit_note_id):
    return emulator().credit_note(tenant_id, credit_note_id)


@bp.post("/tenants/<tenant_id>/credit-notes")
@controlled
def create_credit_note(tenant_id):
    return emulator().create_credit_note(tenant_id, **_body())


@bp.patch("/tenants/<tenant_id>/credit-notes/<credit_note_id>")
@controlled
def update_credit_note(tenant_id, credit_note_id):
    """{"status": SUBMITTED|AUTHORISED|VOIDED|DELETED}."""
    body = _body()
    if set(body) != {"status"}:
        raise ValueError(f"PATCH takes status (got {sorted(body)})")
    return emulator().set_credit_note_status(tenant_id, credit_note_id, body["status"])


@bp.post("/tenants/<tenant_id>/credit-notes/<credit_id>/allocations")
@controlled
def allocate_credit_note(tenant_id, credit_id):
    return _allocate(emulator().allocate_credit_note, tenant_id, credit_id)


@bp.post("/tenants/<tenant_id>/prepayments")
@controlled
def create_prepayment(tenant_id):
    return emulator().create_prepayment(tenant_id, **_body())


@bp.post("/tenants/<tenant_id>/prepayments/<credit_id>/allocations")
@controlled
def allocate_prepayment(tenant_id, credit_id):
    return _allocate(emulator().allocate_prepayment, tenant_id, credit_id)


@bp.post("/tenants/<tenant_id>/overpayments")
@controlled
def create_overpayment(tenant_id):
    return emulator().create_overpayment(tenant_id, **_body())


@bp.post("/tenants/<tenant_id>/overpayments/<credit_id>/allocations")
@controlled
def allocate_overpayment(tenant_id, credit_id):
    return _allocate(emulator().allocate_overpayment, tenant_id, credit_id)


def _allocate(method, tenant_id, credit_id):
    """{"invoice_id": ..., "amount": optional, "date": optional YYYY-MM-DD}."""
    body = _body()
    unknown = set(body) - {"invoice_id", "amount", "date"}
    if unknown or not body.get("invoice_id"):
        raise ValueError(f"allocations take invoice_id, amount, date (got {sorted(body)})")
    return method(tenant_id, credit_id, body["invoice_id"], body.get("amount"), date=body.get("date"))


@bp.delete("/tenants/<tenant_id>/allocations/<allocation_id>")
@controlled
def remove_allocation(tenant_id, allocation_id):
    return emulator().remove_allocation(tenant_id, allocation_id)


@bp.get("/behaviour")
@controlled
def get_behaviour():
    return emulator().behaviour()


@bp.put("/behaviour")
@bp.patch("/behaviour")
@controlled
def set_behaviour():
    """{"merge_moves_invoices_updated": bool, "unpaged_line_items": bool}; answers the current switches."""
    return emulator().set_behaviour(**_body())


@bp.post("/tenants/<tenant_id>/invoices")
@controlled
def create_invoice(tenant_id):
    return emulator().create_invoice(tenant_id, **_body())


@bp.patch("/tenants/<tenant_id>/invoices/<invoice_id>")
@controlled
def update_invoice(tenant_id, invoice_id):
    """{"due_date": "YYYY-MM-DD"} and/or {"status": SUBMITTED|AUTHORISED|VOIDED|DELETED}."""
    body, state, result = _body(), emulator(), None
    unknown = set(body) - {"due_date", "status"}
    if unknown or not body:
        raise ValueError(f"PATCH takes due_date and/or status (got {sorted(body)})")
    if "due_date" in body:
        result = state.set_due_date(tenant_id, invoice_id, body["due_date"])
    if "status" in body:
        result = state.set_invoice_status(tenant_id, invoice_id, body["status"])
    return result


@bp.post("/tenants/<tenant_id>/invoices/<invoice_id>/payments")
@controlled
def apply_payment(tenant_id, invoice_id):
    return emulator().apply_payment(tenant_id, invoice_id, **_body())


@bp.post("/tenants/<tenant_id>/invoices/<invoice_id>/void")
@controlled
def void_invoice(tenant_id, invoice_id):
    return emulator().void_invoice(tenant_id, invoice_id)


@bp.post("/tenants/<tenant_id>/invoices/<invoice_id>/delete")
@bp.delete("/tenants/<tenant_id>/invoices/<invoice_id>")
@controlled
def delete_invoice(tenant_id, invoice_id):
    return emulator().delete_invoice(tenant_id, invoice_id)


@bp.delete("/tenants/<tenant_id>/payments/<payment_id>")
@controlled
def delete_payment(tenant_id, payment_id):
    return emulator().delete_payment(tenant_id, payment_id)


@bp.get("/calls")
@controlled
def calls():
    """{"total": n, "bytes": wire, "bytes_uncompressed": n, "rows": [{tenant_id, endpoint, status,
    count, bytes, bytes_uncompressed}]}, filtered by ?tenant_id=&endpoint=&status= when given."""
    args = request.args
    status = int(args["status"]) if args.get("status") else None
    state = emulator()
    tenant, endpoint = args.get("tenant_id") or None, args.get("endpoint") or None
    total = state.call_count(tenant, endpoint, status)
    wire = state.calls.bytes(tenant, endpoint, status)
    raw = state.calls.bytes(tenant, endpoint, status, uncompressed=True)
    rows = [
        r
        for r in state.call_counts()
        if (not args.get("tenant_id") or r["tenant_id"] == args["tenant_id"])
        and (not args.get("endpoint") or r["endpoint"] == args["endpoint"])
        and (status is None or r["status"] == status)
    ]
    return {"total": total, "bytes": wire, "bytes_uncompressed": raw, "rows": rows}


@bp.delete("/calls")
@bp.post("/calls/reset")
@controlled
def reset_calls():
    emulator().reset_calls()
    return {"ok": True}


@bp.get("/faults")
@controlled
def get_faults():
    return emulator().get_faults()


@bp.put("/faults")
@bp.patch("/faults")
@controlled
def set_faults():
    return emulator().set_faults(**_body())


@bp.delete("/faults")
@controlled
def reset_faults():
    return emulator().reset_faults()


@bp.get("/limits")
@controlled
def get_limits():
    return emulator().get_limits()


@bp.put("/limits")
@bp.patch("/limits")
@controlled
def set_limits():
    return emulator().set_limits(**_body())


@bp.get("/tenants/<tenant_id>/limits")
@controlled
def get_tenant_limits(tenant_id):
    return emulator().tenant_limits(tenant_id)


@bp.patch("/tenants/<tenant_id>/limits")
@bp.put("/tenants/<tenant_id>/limits")
@controlled
def set_tenant_limits(tenant_id):
    """{"day": 1000} gives the tenant its own daily limit; {"day": null} puts it back on the shared one."""
    body = _body()
    unknown = set(body) - {"day"}
    if unknown:
        raise ValueError(f"per-tenant limits take only 'day', not {sorted(unknown)}")
    if "day" not in body:
        raise ValueError('per-tenant limits take {"day": N}')
    return emulator().set_tenant_limits(tenant_id, body["day"])


@bp.post("/limits/reset")
@controlled
def reset_limits():
    emulator().reset_rate_limits()
    return emulator().get_limits()


@bp.get("/webhooks")
@controlled
def webhooks():
    state = emulator()
    return {
        "url": state.webhooks.url,
        "events": state.webhook_events(),
        "deliveries": state.webhook_deliveries(),
        "last_intent": state.webhooks.last_intent,
    }


@bp.put("/webhooks")
@controlled
def set_webhook_url():
    emulator().set_webhook_url(_body().get("url"))
    return {"url": emulator().webhooks.url}


@bp.post("/webhooks/wait")
@controlled
def wait_webhooks():
    return {"idle": emulator().wait_for_webhooks(float(_body().get("timeout", 10)))}


@bp.post("/webhooks/intent-to-receive")
@controlled
def intent_to_receive():
    return emulator().intent_to_receive(_body().get("url"))


@bp.post("/clock")
@controlled
def advance_clock():
    emulator().advance_clock(float(_body().get("advance_seconds", 0)))
    return {"now": emulator().clock.now().isoformat()}


@bp.post("/tokens/client-credentials")
@controlled
def client_credentials_token():
    return emulator().client_credentials_token(_body().get("scope"))


@bp.post("/tokens/user")
@controlled
def user_token():
    body = _body()
    kwargs = {"scope": body["scope"]} if body.get("scope") else {}
    return emulator().user_token(body.get("tenant_ids"), **kwargs)
