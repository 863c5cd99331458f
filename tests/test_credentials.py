"""Startup checks of secrets, and the development credentials of `leadstream dev`/`demo`."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from stream.credentials import check_secret, check_webhook_secrets, check_whsec
from stream.dev.credentials import dev_credentials, token_with_scope, with_dev_credentials
from stream.errors import SettingsError
from stream.settings import Settings

GOOD_WHSEC = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is empty: set it"),
        ("change-me-browser", "holds a placeholder"),
        ("demo-browser-key", "holds a placeholder"),
        ("aaaaaaaaaaaaaaaaaaaaaaaa", "holds a placeholder"),
        ("your-key-goes-here-123", "holds a placeholder"),
        ("Xk3f9", "5 characters is too short, want 16"),
    ],
)
def test_check_secret_refuses(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        check_secret("LEADSTREAM_WRITE_KEYS", value, min_chars=16, what="key")
    assert caught.value.args[0].startswith("LEADSTREAM_WRITE_KEYS")
    if value:
        assert value not in str(caught.value)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("whsec_change-me", "placeholder"),  # was accepted as a 6-byte key
        ("whsec_" + base64.b64encode(b"x" * 10).decode(), "placeholder"),
        ("whsec_" + base64.b64encode(b"abcdefghij").decode(), "10 bytes is too short"),
        ("whsec_not base64!", "not whsec_<base64>"),
        ("whsec_bGVhZHN0cmVhbS1kZW1vLXNlY3JldC0xMjM0NTY3OA==", "placeholder"),  # old demo one
    ],
)
def test_check_whsec_refuses(secret: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        check_whsec("LEADSTREAM_WEBHOOK_SECRET", secret)


def test_good_secrets_pass() -> None:
    assert len(check_whsec("V", GOOD_WHSEC)) == 32
    check_webhook_secrets((GOOD_WHSEC, "whsec_" + base64.b64encode(os.urandom(24)).decode()))
    check_secret("V", "q8Zr2LmW7pX4nT6v", min_chars=16)
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET is empty"):
        check_webhook_secrets(())


def test_dev_credentials_are_random_written_once_and_private(tmp_path: Path) -> None:
    first = dev_credentials(tmp_path / "a")
    assert dev_credentials(tmp_path / "a") == first  # read back, not regenerated
    assert dev_credentials(tmp_path / "b") != first  # random per dev directory
    mode = (tmp_path / "a" / "credentials.env").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    settings = with_dev_credentials(Settings.from_env({}, dev_dir=str(tmp_path / "a")))
    assert len(settings.parsed_write_keys()) == 2
    check_webhook_secrets(tuple(settings.webhook_secret.split()))  # pass the notifier's check
    assert len(token_with_scope(settings, "admin")) >= 24
    # the operator's own values win
    own = Settings.from_env({}, dev_dir=str(tmp_path / "a"), webhook_secret=GOOD_WHSEC)
    assert with_dev_credentials(own).webhook_secret == GOOD_WHSEC
