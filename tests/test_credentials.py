"""Startup checks of secrets, and the development credentials of `leadstream dev`/`demo`."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest

from stream.credentials import (
    MIN_TOKEN_CHARS,
    check_collector,
    check_identity_secret,
    check_secret,
    check_webhook_secrets,
    check_whsec,
)
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
    check_secret("V", secrets.token_urlsafe(32), min_chars=16)
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET is empty"):
        check_webhook_secrets(())


# -- issue 28, item 3: weak values that passed the length and placeholder checks ----------------


def strong_settings(tmp_path: Path) -> Settings:
    """Settings the collector starts with: the dev credentials and strong webhook secrets."""
    settings = with_dev_credentials(Settings.from_env({}, dev_dir=str(tmp_path / "dev")))
    return settings.replace(
        mailgun_signing_key=secrets.token_hex(32), generic_webhook_secret=GOOD_WHSEC
    )


WEAK = ("YOUR_WRITE_KEY_HERE_123", "password12345678", "abcdabcdabcdabcd")
WEAK_TOKENS = ("admin-token-admin-token-admin", "correct-horse-battery-staple-2024")
DIGITS_WHSEC = "whsec_" + base64.b64encode(b"".join(b"%d" % (i % 10) for i in range(24))).decode()


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        *[("write_keys", f"{key}=website:browser", "LEADSTREAM_WRITE_KEYS") for key in WEAK],
        *[("lead_api_tokens", f"{t}:admin", "LEADSTREAM_LEAD_API_TOKENS") for t in WEAK_TOKENS],
        ("identity_secret", "my-identity-secret-0123456789", "LEADSTREAM_IDENTITY_SECRET"),
        ("mailgun_signing_key", "password12345678", "LEADSTREAM_MAILGUN_SIGNING_KEY"),
        ("generic_webhook_secret", DIGITS_WHSEC, "LEADSTREAM_GENERIC_WEBHOOK_SECRET"),
    ],
)
def test_guessable_secrets_stop_the_collector(
    tmp_path: Path, field: str, value: str, variable: str
) -> None:
    """The finding: each of these passed `check_collector`. The error names the variable and
    how to generate a value, never the value."""
    settings = strong_settings(tmp_path)
    check_collector(settings)  # the strong ones pass
    with pytest.raises(SettingsError) as caught:
        check_collector(settings.replace(**{field: value}))
    message = str(caught.value)
    assert message.startswith(variable) and "too easy to guess" in message, message
    assert "token_urlsafe" in message or "os.urandom" in message
    secret = value.split("=")[0] if field == "write_keys" else value.rpartition(":")[0] or value
    assert secret not in message


def test_a_whsec_secret_of_24_ascii_digits_stops_the_notifier() -> None:
    with pytest.raises(SettingsError, match="LEADSTREAM_WEBHOOK_SECRET: its key bytes are too"):
        check_webhook_secrets((DIGITS_WHSEC,))
    typed = "whsec_" + base64.b64encode(b"leadstream-notifier-test-secret!").decode()
    with pytest.raises(SettingsError, match="too easy to guess"):
        check_webhook_secrets((GOOD_WHSEC, typed))  # each of a rotation pair


@pytest.mark.parametrize(
    "generate",
    [
        lambda: secrets.token_urlsafe(32),
        lambda: secrets.token_hex(32),
        lambda: secrets.token_hex(24),
        lambda: base64.b64encode(os.urandom(32)).decode(),
    ],
)
def test_random_secrets_pass(generate: Any) -> None:
    """What the error message and docs/security.md tell operators to run always passes."""
    for _ in range(200):
        check_secret("V", generate(), min_chars=MIN_TOKEN_CHARS)
        check_whsec("V", "whsec_" + base64.b64encode(os.urandom(32)).decode())


def test_development_credentials_always_pass(tmp_path: Path) -> None:
    """`leadstream dev env`'s format: many fresh sets, every one passes every check."""
    for n in range(100):
        settings = with_dev_credentials(Settings.from_env({}, dev_dir=str(tmp_path / str(n))))
        check_collector(settings)
        check_identity_secret(settings)
        check_webhook_secrets(tuple(settings.webhook_secret.split()))


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
