import pytest

from store.secrets import SecretsError, TokenBox, new_key


def test_sealed_token_holds_no_clear_text_and_opens_again():
    box = TokenBox([new_key()])
    token = {"access_token": "at-very-secret", "refresh_token": "rt-very-secret"}
    sealed = box.seal(token)
    assert b"very-secret" not in sealed
    assert box.open(sealed) == token


def test_old_key_still_decrypts_and_rotation_moves_to_newest():
    old, new = new_key(), new_key()
    sealed_old = TokenBox([old]).seal({"refresh_token": "rt"})
    both = TokenBox([new, old])
    assert both.open(sealed_old) == {"refresh_token": "rt"}
    rotated = both.rotate(sealed_old)
    assert TokenBox([new]).open(rotated) == {"refresh_token": "rt"}
    with pytest.raises(SecretsError):
        TokenBox([old]).open(rotated)


def test_missing_or_bad_keys_are_clear_errors():
    with pytest.raises(SecretsError, match="TOKEN_KEYS is empty"):
        TokenBox([])
    with pytest.raises(SecretsError, match="not a valid Fernet key"):
        TokenBox(["not-a-key"])
