"""Schemathesis against /api/v1/openapi.json: every operation, stateless, with a valid key on a
workspace that has data, with valid input and with invalid input. No 5xx; every answer's
status, content type and body as documented.

The key operations (/api/v1/keys) run with the same admin key: they list, issue and revoke in
its workspace, never revoke the key itself (409), and never reach the other workspace's keys,
whose ids they are aimed at too.

Half the generated cases aim their path ids at records and invoices that exist (schemathesis
alone would almost only ever meet 404s), the other half keep schemathesis' own.
"""
from __future__ import annotations

import itertools
from collections import Counter
from datetime import date

import pytest
import schemathesis
from flask import request
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.settings import Settings
from store import workspaces
from store.db import transaction
from tests.integration.mirror_rows import contact, invoice, payment, workspace
from wsgi import close_app, create_app

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
REAL = {"id": ["ann", "acme"], "invoice_id": ["i-open", "i-paid", "i-part"]}
EXAMPLES = 25  # per operation and mode (valid and invalid input): the whole file stays well under a minute


@pytest.fixture
def seeded(database_url, sessions):
    app = create_app(Settings(database_url=database_url, secret_key="schemathesis-secret"))
    answered: Counter = Counter()

    @app.after_request
    def _count(response):
        answered[request.endpoint, response.status_code] += 1
        return response

    app.extensions["answered"] = answered
    with transaction(sessions) as s:
        ws = workspace(s, "Fuzz", "tenant-f")
        other = workspace(s, "Other", "tenant-o")
        s.add_all([
            contact("tenant-f", "x-ann", "ann@fuzz.test"),
            contact("tenant-f", "x-acme", "billing@acme.test"),
            invoice("tenant-f", "i-open", "x-ann", total="120.00"),
            invoice("tenant-f", "i-paid", "x-ann", status="PAID", total="50.00", paid="50.00", due=date(2026, 1, 1)),
            invoice("tenant-f", "i-part", "x-acme", total="300.00", paid="100.00", currency="USD", rate="0.6"),
            payment("tenant-f", "p-1", "i-paid", "50.00", date(2026, 10, 1)),
            payment("tenant-f", "p-2", "i-part", "100.00", date(2026, 10, 2)),
        ])
    client = app.test_client()
    for kind, record, email in (("contacts", "ann", "ann@fuzz.test"), ("accounts", "acme", "billing@acme.test"),
                                ("deals", "ann", None)):
        body = {"email": email} if email else {"invoice_ids": ["i-part"]}
        assert client.put(f"/api/v1/{kind}/{record}", json=body,
                          headers={"Authorization": f"Bearer {ws.admin_key}"}).status_code == 200
    with sessions() as s:
        key_ids = {w: [k.id for k in workspaces.list_keys(s, w.id)] for w in (ws, other)}
    yield app, ws.admin_key, {**REAL, "key_id": key_ids[ws] + key_ids[other]}, key_ids[other]
    with sessions() as s:  # the fuzzing never revoked its own key, nor reached another workspace's
        assert workspaces.authenticate(s, ws.admin_key) is not None
        assert all(workspaces.key_is_live(s, key_id) for key_id in key_ids[other])
    close_app(app)


def test_every_operation_answers_as_documented_and_never_5xx(seeded):
    app, key, real, _ = seeded
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    assert {"list_api_keys", "issue_api_key", "revoke_api_key"} <= {
        op.definition.raw.get("operationId") for op in operations}
    turn = itertools.count()

    for operation, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def answers_as_documented(case):
            n = next(turn)
            if n % 2 and case.path_parameters:  # half the cases aim at records and invoices that exist
                for name, values in real.items():
                    if name in case.path_parameters:
                        case.path_parameters[name] = values[n // 2 % len(values)]
            case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

        answers_as_documented()

    answered = app.extensions["answered"]
    for endpoint_status in (("keys.list_keys", 200), ("keys.issue_key", 201), ("keys.issue_key", 400),
                            ("keys.revoke_key", 200), ("keys.revoke_key", 404), ("keys.revoke_key", 409)):
        assert answered[endpoint_status], (endpoint_status, answered)  # the key operations were exercised
