"""Xero's own OpenAPI descriptions as JSON Schema validators (loaded once per session).

OpenAPI 3.0 schema objects become draft-4 JSON Schema: `$ref`s resolve against the document's
`components`, `nullable: true` widens `type` to null, annotation keywords are dropped, and the
Xero extensions `x-is-msdate` / `x-is-msdate-time` become a `/Date(ms[+hhmm])/` pattern (the spec
types those fields as bare strings). Formats checked: uuid, uri, and date-time as ISO 8601 with an
optional offset, because Xero's own examples omit it (`2019-12-07T18:46:19.5165400` in identity,
`2024-06-21T01:15:39.902` in webhooks), which strict RFC 3339 would reject.
"""

from __future__ import annotations

import functools
import re
import uuid
from pathlib import Path

import jsonschema
import pytest
import yaml

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "xero-openapi"
MS_DATE_PATTERN = r"^/Date\(-?\d+([+-]\d{4})?\)/$"
DROPPED = {
    "example",
    "examples",
    "externalDocs",
    "xml",
    "readOnly",
    "writeOnly",
    "deprecated",
    "discriminator",
    "description",
    "default",
}
ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")

FORMATS = jsonschema.FormatChecker(formats=())


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML without implicit timestamps: the spec's example strings must stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value.lower()


@FORMATS.checks("date-time")
def _date_time(value) -> bool:
    return not isinstance(value, str) or bool(ISO_DATE_TIME.match(value))


@FORMATS.checks("uri")
def _uri(value) -> bool:
    return not isinstance(value, str) or bool(re.match(r"^[a-z][a-z0-9+.-]*://\S+$", value))


def available() -> bool:
    return (SHARED / "xero_accounting.yaml").is_file()


needs_spec = pytest.mark.skipif(not available(), reason=f"Xero's OpenAPI descriptions not found at {SHARED}")


@functools.cache
def document(name: str) -> dict:
    with open(SHARED / name, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)


def convert(schema):
    """One OpenAPI 3.0 schema object (recursively) as JSON Schema."""
    if isinstance(schema, list):
        return [convert(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in DROPPED or key.startswith("x-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: convert(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = convert(value)
        else:
            out[key] = value
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
    if schema.get("x-is-msdate") or schema.get("x-is-msdate-time"):
        out["pattern"] = MS_DATE_PATTERN
    return out


@functools.cache
def _components(name: str) -> dict:
    return {
        "schemas": {key: convert(value) for key, value in document(name)["components"]["schemas"].items()}
    }


def response_validator(name: str, path: str, method: str = "get", status: str = "200"):
    """A validator for one operation's JSON response, as the spec declares it."""
    operation = document(name)["paths"][path][method]
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    root = {**convert(schema), "components": _components(name)}
    return jsonschema.Draft4Validator(root, format_checker=FORMATS)


def component_validator(name: str, component: str, draft=jsonschema.Draft4Validator):
    root = {"$ref": f"#/components/schemas/{component}", "components": _components(name)}
    return draft(root, format_checker=FORMATS)


def webhook_validator(component: str = "WebhookEvent"):
    """The webhooks file is OpenAPI 3.1: its schemas already are JSON Schema 2020-12.
    `component="CreditNoteWebhookEvent"` also requires CREDITNOTE events' `data {Type, Status}`."""
    components = document("xero-webhooks.yaml")["components"]
    root = {"$ref": f"#/components/schemas/{component}", "components": components}
    return jsonschema.Draft202012Validator(root, format_checker=FORMATS)


def errors(validator, instance) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]
