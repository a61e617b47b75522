import base64
import hashlib
import hmac

import pytest

from webhook import signature

KEY = "webhook-key-from-the-portal"
ITR = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}'
# computed independently: printf '%s' "$ITR" | openssl dgst -sha256 -hmac "$KEY" -binary | base64
ITR_SIGNATURE = "f56+sAgBGGwbGzGRCOnXySw7dtP3rTdQZLof2BOGyOM="


def test_sign_matches_xeros_algorithm_computed_by_openssl():
    assert signature.sign(ITR, KEY) == ITR_SIGNATURE


def test_xeros_signature_verifies():
    assert signature.is_valid(ITR, ITR_SIGNATURE, KEY)


def test_signature_of_a_non_ascii_body_verifies_over_the_raw_bytes():
    body = '{"entropy": "Ünïcødé ✓"}'.encode()
    header = base64.b64encode(hmac.new(KEY.encode(), body, hashlib.sha256).digest()).decode()
    assert signature.is_valid(body, header, KEY)


def test_wrong_key_fails():
    assert not signature.is_valid(ITR, ITR_SIGNATURE, KEY + "x")


def test_tampered_body_fails():
    assert not signature.is_valid(ITR.replace(b"S0m3", b"S0m4"), ITR_SIGNATURE, KEY)
    assert not signature.is_valid(ITR + b" ", ITR_SIGNATURE, KEY)  # re-serialised JSON is not the same bytes


@pytest.mark.parametrize(
    "header", [None, "", " ", "not base64 at all!!", "é☃\x00", ITR_SIGNATURE[:-1], "=" * 44]
)
def test_missing_or_junk_header_fails_without_raising(header):
    assert not signature.is_valid(ITR, header, KEY)


def test_other_encodings_of_the_right_digest_fail():
    digest = hmac.new(KEY.encode(), ITR, hashlib.sha256).digest()
    assert not signature.is_valid(ITR, digest.hex(), KEY)
    assert not signature.is_valid(ITR, base64.b64encode(digest).decode().rstrip("="), KEY)
    assert base64.urlsafe_b64encode(digest).decode() != ITR_SIGNATURE  # the vector exercises + and /
    assert not signature.is_valid(ITR, base64.urlsafe_b64encode(digest).decode(), KEY)


def test_no_configured_key_verifies_nothing():
    assert not signature.is_valid(ITR, signature.sign(ITR, ""), "")


def test_comparison_is_constant_time(monkeypatch):
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert signature.is_valid(ITR, ITR_SIGNATURE, KEY)
    assert not signature.is_valid(ITR, "junk", KEY)
    assert len(compared) == 2
