"""Credentials out of URLs before anything logs them: parameters named like a secret, blanked (pure).

A URL may carry a credential in its query or fragment: the widget's legacy `?token=xme_...`,
an admin link's `?ticket=...`, OAuth's `?code=...&state=...`. `url()` blanks the value of every
such parameter wherever a URL appears in a text (a request line, a Referer, an exception's
message), percent-encoded ones inside another parameter included; other parameters (`view=`,
`page=`) stay readable. What counts as a secret is the parameter's name (`SECRET_PARAM`): it
errs towards blanking too much.
"""
from __future__ import annotations

import re

REDACTED = "[redacted]"
# token, id_token, access_token, ticket, code, code_verifier, state, client_secret, password,
# api_key, signature, session, nonce, assertion, oauth_*, credential, otp, jwt
SECRET_PARAM = re.compile(
    r"token|ticket|code|state|secret|passw|pwd|key|sig|session|nonce|verifier|assertion|auth|credential|otp|jwt",
    re.I,
)
# A header (or its WSGI environ name) whose whole value is a credential.
SECRET_HEADER = re.compile(r"authori[sz]ation|cookie|token|secret|passw|api[_-]?key|signature", re.I)
_SEPARATOR = r"(?:[?&;#]|%3F|%26|%23)"
_PARAM = re.compile(
    rf"""(?ix)
    ({_SEPARATOR} ([^=&?#\s"'<>]{{0,100}}?) (?:=|%3D))   # ?name=  &name=  #name=  %26name%3D
    ((?:(?!%26|%23|%3F)[^&#\s"'<>])*)                 # its value, up to the next parameter
    """
)


def url(text: str) -> str:
    """`text` with the value of every URL parameter named like a secret replaced by [redacted]."""
    if "=" not in text and "%3D" not in text.upper():
        return text
    return _PARAM.sub(_blank, text)


def query(query_string: str) -> str:
    """A bare query string (`token=...&view=paid`, no `?`) with its secret values blanked."""
    return url("?" + query_string)[1:] if query_string else query_string


def _blank(match: re.Match[str]) -> str:
    name, value = match.group(2), match.group(3)
    if value and SECRET_PARAM.search(name):
        return match.group(1) + REDACTED
    return match.group(0)
