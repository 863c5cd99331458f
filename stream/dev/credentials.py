"""Development credentials: random, written once per dev directory, never a public default.

`leadstream dev up` and `leadstream demo` use them; tests use them through the same function.
Because they are random per machine, a development key copied into production is still not a
key anybody else knows, and the collector's placeholder check does not need an exception for
them.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from stream.settings import ENV_PREFIX, Settings

FILE_NAME = "credentials.env"


def _generate() -> dict[str, str]:
    token = secrets.token_urlsafe
    return {
        "write_keys": f"dev-browser-{token(18)}=website:browser,dev-server-{token(18)}=crm:server",
        "webhook_secret": "whsec_" + base64.b64encode(os.urandom(32)).decode(),
        "lead_api_tokens": f"dev-read-{token(24)}:read,dev-admin-{token(24)}:admin",
        "identity_secret": token(32),
    }


def dev_credentials(dev_dir: Path) -> dict[str, str]:
    """The credentials of this dev directory: read from its file, else generated and written."""
    path = dev_dir / FILE_NAME
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.startswith(ENV_PREFIX):
                values[name[len(ENV_PREFIX) :].lower()] = value.strip().strip("'")
    fresh = _generate()
    if set(values) >= set(fresh):
        return values
    # A file of an older version lacks a credential: add it, keep the ones already handed out.
    values = {**fresh, **{k: v for k, v in values.items() if k in fresh}}
    dev_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ENV_PREFIX}{k.upper()}='{v}'\n" for k, v in values.items()))
    path.chmod(0o600)
    return values


def with_dev_credentials(settings: Settings) -> Settings:
    """`settings` with the dev credentials filled in wherever the operator set nothing."""
    values = dev_credentials(settings.dev_path)
    missing = {k: v for k, v in values.items() if not getattr(settings, k)}
    return settings.replace(**missing) if missing else settings


def token_with_scope(settings: Settings, scope: str) -> str:
    """A lead API token of `scope` from `settings` (demo and tests print or use it)."""
    for token, has in settings.parsed_lead_api_tokens().items():
        if has == scope:
            return token
    raise LookupError(f"no {scope} token in {ENV_PREFIX}LEAD_API_TOKENS")
