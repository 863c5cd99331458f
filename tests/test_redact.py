"""stream/redact.py: URLs as messages show them, credentials hidden, malformed ones too."""

from __future__ import annotations

import pytest

from stream.redact import redact_url


@pytest.mark.parametrize(
    ("url", "keep_path", "shown"),
    [
        ("redis://127.0.0.1:6379/0", True, "redis://127.0.0.1:6379/0"),
        ("redis://:pw@redis:6379/0", True, "redis://***@redis:6379/0"),
        (
            "rediss://default:pw@redis:6380/2?ssl_cert_reqs=none",
            True,
            "rediss://***@redis:6380/2?***",
        ),
        ("redis//:pw@redis:6379/0", True, "***@redis:6379/0"),  # lost its ':'
        ("redis:/user:pw@redis/0", True, "***@redis/0"),
        ("redis://redis:6379/0?password=pw", True, "redis://redis:6379/0?***"),
        ("https://hooks.slack.com/services/T0/B0/pw", False, "https://hooks.slack.com/***"),
        (
            "https://user:pw@crm.example.com/tasks?token=pw",
            False,
            "https://***@crm.example.com/***?***",
        ),
        ("https://receiver.example.com/", False, "https://receiver.example.com/"),
        ("localhost", True, "localhost"),
        ("", False, ""),
    ],
)
def test_redact_url(url: str, keep_path: bool, shown: str) -> None:
    assert redact_url(url, keep_path=keep_path) == shown
    assert "pw" not in redact_url(url, keep_path=keep_path)
