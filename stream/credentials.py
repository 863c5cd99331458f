"""Secrets at startup: refuse placeholders, short values and guessable ones, naming the
variable to set and how to generate a value.

The collector, the worker and the notifier call these before they listen or consume, so a
deployment that forgot a secret (or kept `whsec_change-me` from an example, or typed
`password12345678`) stops with one line saying what to set, instead of running with a
guessable credential. Guessable = fewer than MIN_SECRET_BITS estimated by `stream.entropy`
(issue 28: `YOUR_WRITE_KEY_HERE_123`, `abcdabcdabcdabcd`, `admin-token-admin-token-admin` and
a `whsec_` key of 24 ASCII digits passed the length and placeholder checks).
"""

from __future__ import annotations

import base64
import binascii

from stream.entropy import estimate_bits, estimate_key_bits
from stream.errors import SettingsError
from stream.settings import ENV_PREFIX, Settings

MIN_WRITE_KEY_CHARS = 16
MIN_TOKEN_CHARS = 24
MIN_HMAC_KEY_BYTES = 24  # Standard Webhooks: secrets of 24 to 64 random bytes
MIN_SECRET_BITS = 128
GENERATE = (
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` or `openssl rand -hex 32`"
)
GENERATE_WHSEC = (
    "`python -c 'import base64,os; print(\"whsec_\"+base64.b64encode(os.urandom(32)).decode())'`"
)
# Words that mark a value copied from an example; a random secret does not contain them.
PLACEHOLDERS = (
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "placeholder",
    "example",
    "your-",
    "<",
    "demo-browser-key",
    "demo-server-key",
    "leadstream-dev-identity-secret",  # the fallback `leadstream replay` uses without one
    "bGVhZHN0cmVhbS1kZW1vLXNlY3JldC0xMjM0NTY3OA",  # the old public demo webhook secret
)


def check_secret(variable: str, value: str, *, min_chars: int, what: str = "secret") -> None:
    """SettingsError when `value` is empty, a placeholder, shorter than `min_chars` or
    guessable (fewer than MIN_SECRET_BITS estimated).

    The message names the variable and never the value (it may be a real secret, mistyped).
    """
    _check_set(variable, value, what, GENERATE)
    if len(value) < min_chars:
        raise SettingsError(
            f"{variable}: a {what} of {len(value)} characters is too short, want "
            f"{min_chars} or more random characters (e.g. {GENERATE})"
        )
    bits = estimate_bits(value)
    if bits < MIN_SECRET_BITS:
        raise SettingsError(
            f"{variable}: a {what} is too easy to guess (about {bits:.0f} bits estimated, want "
            f"{MIN_SECRET_BITS}: words, repeats and sequences count for little); generate a "
            f"random one with {GENERATE}"
        )


def _check_set(variable: str, value: str, what: str, generate: str) -> None:
    """SettingsError when `value` is empty or a placeholder."""
    if not value:
        raise SettingsError(f"{variable} is empty: set it to a random {what} (e.g. {generate})")
    lowered = value.lower()
    if any(word.lower() in lowered for word in PLACEHOLDERS) or len(set(value)) < 4:
        raise SettingsError(
            f"{variable} holds a placeholder: set it to a random {what} (e.g. {generate})"
        )


def check_whsec(variable: str, secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret, refused when empty, a placeholder, short or
    guessable (judged on the key bytes, not on their base64)."""
    _check_set(variable, secret, "whsec_<base64> secret", GENERATE_WHSEC)
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(
            f"{variable}: not whsec_<base64> (generate one with {GENERATE_WHSEC})"
        ) from None
    if len(set(key)) < 4:
        raise SettingsError(
            f"{variable} holds a placeholder: its key bytes are not random (generate one with "
            f"{GENERATE_WHSEC})"
        )
    if len(key) < MIN_HMAC_KEY_BYTES:
        raise SettingsError(
            f"{variable}: a key of {len(key)} bytes is too short, want {MIN_HMAC_KEY_BYTES} "
            f"or more random bytes (generate one with {GENERATE_WHSEC})"
        )
    bits = estimate_key_bits(key)
    if bits < MIN_SECRET_BITS:
        raise SettingsError(
            f"{variable}: its key bytes are too easy to guess (about {bits:.0f} bits "
            f"estimated, want {MIN_SECRET_BITS}: typed text or digits, base64-encoded, count "
            f"as text); generate random bytes with {GENERATE_WHSEC}"
        )
    return key


def check_identity_secret(settings: Settings) -> None:
    """Collectors and workers key email-only visitors by a keyed hash of the address: without
    a real shared secret anyone could compute a person's lead id from their address."""
    check_secret(
        f"{ENV_PREFIX}IDENTITY_SECRET",
        settings.identity_secret,
        min_chars=MIN_TOKEN_CHARS,
        what="secret (the same on every collector and worker)",
    )


def check_collector(settings: Settings) -> None:
    """What the collector needs before it listens: real write keys and real webhook secrets."""
    check_identity_secret(settings)
    keys = settings.parsed_write_keys()
    if not keys:
        raise SettingsError(
            f"{ENV_PREFIX}WRITE_KEYS is empty: set key=source:browser|server pairs "
            "(for development: `leadstream dev up` writes some)"
        )
    for key in keys:
        check_secret(f"{ENV_PREFIX}WRITE_KEYS", key, min_chars=MIN_WRITE_KEY_CHARS, what="key")
    for token in settings.parsed_lead_api_tokens():
        check_secret(f"{ENV_PREFIX}LEAD_API_TOKENS", token, min_chars=MIN_TOKEN_CHARS, what="token")
    if settings.mailgun_signing_key:
        check_secret(
            f"{ENV_PREFIX}MAILGUN_SIGNING_KEY",
            settings.mailgun_signing_key,
            min_chars=MIN_WRITE_KEY_CHARS,
            what="signing key",
        )
    if settings.generic_webhook_secret:
        check_whsec(f"{ENV_PREFIX}GENERIC_WEBHOOK_SECRET", settings.generic_webhook_secret)


def check_webhook_secrets(secrets: tuple[str, ...]) -> None:
    """The notifier's Standard Webhooks secrets (every one of a rotation pair)."""
    variable = f"{ENV_PREFIX}WEBHOOK_SECRET"
    if not secrets:
        raise SettingsError(f"{variable} is empty: set it to whsec_<base64 of 32 random bytes>")
    for secret in secrets:
        check_whsec(variable, secret)
