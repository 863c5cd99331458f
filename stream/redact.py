"""Settings values as messages may show them: URLs without their credentials.

Error messages and status lines name the setting and enough of its value to find the mistake,
never a secret in it (issue 28: a malformed Redis URL was printed with its password). URLs
carry secrets in three places: the user info (`redis://:password@host`), the query
(`?password=`, `?token=`) and, for incoming-webhook services, the path
(`https://hooks.slack.com/services/T…/B…/secret`). `redact_url` works on the text, not on a
parsed URL, because the URLs it is handed are often the malformed ones.
"""

from __future__ import annotations

HIDDEN = "***"


def redact_url(url: str, *, keep_path: bool = False) -> str:
    """`url` with the user info and the query replaced by `***`, and the path too unless
    `keep_path` (a Redis database number or socket path is no secret; a webhook's path may be).

    Everything before the last `@` counts as user info, wherever it is: a URL that lost its
    `//` still has its password hidden.
    """
    scheme, sep, rest = url.partition("://")
    head = f"{scheme}://" if sep else ""
    if not sep:
        rest = url
    if "@" in rest:
        rest = f"{HIDDEN}@" + rest.rpartition("@")[2]
    rest, question, _ = rest.partition("?")
    host, slash, path = rest.partition("/")
    if path and not keep_path:
        path = HIDDEN
    return head + host + slash + path + (f"?{HIDDEN}" if question else "")
