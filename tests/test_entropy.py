"""stream/entropy.py: hand-worked estimates, the values of issue 28, random tokens."""

from __future__ import annotations

import math
import os
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.entropy import estimate_bits, estimate_key_bits

LOWER = math.log2(26)
ALNUM = math.log2(62)


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("", 0.0),
        ("Xk3f9", 5 * ALNUM),  # no pattern: five characters of a 62-character alphabet
        ("aaaa", LOWER + 1),  # one run that stays the same
        ("abcdabcd", 2 * LOWER + 1),  # a climbing run, then a repeat of it
        ("9876", math.log2(10) + 1),  # a falling run
        ("key", 14.0),  # a listed word
        ("Keys", 14.0),  # any case
        ("sunshine", 14.0 + 2 * 4),  # not listed, but reads like a word
        ("xkcd", 4 * LOWER),  # four consonants: not a word
    ],
)
def test_hand_worked_estimates(text: str, bits: float) -> None:
    assert estimate_bits(text) == pytest.approx(bits)


@pytest.mark.parametrize(
    ("key", "bits"),
    [
        (bytes(range(32)), 8.0),  # one climbing run
        (b"\x00\xff" * 16, 24.0),  # two bytes, then a repeat of them
        (b"0123456789" * 3, math.log2(10) + 1 + math.log2(10)),  # printable: judged as text
    ],
)
def test_hand_worked_key_estimates(key: bytes, bits: float) -> None:
    assert estimate_key_bits(key) == pytest.approx(bits)


@pytest.mark.parametrize(
    "value",
    [
        "YOUR_WRITE_KEY_HERE_123",
        "password12345678",
        "abcdabcdabcdabcd",
        "admin-token-admin-token-admin",
        "correct-horse-battery-staple",
    ],
)
def test_values_a_person_made_up_are_far_below_128_bits(value: str) -> None:
    assert estimate_bits(value) < 100


def test_random_tokens_are_well_above_128_bits() -> None:
    for _ in range(300):
        assert estimate_bits(secrets.token_urlsafe(32)) > 160
        assert estimate_bits(secrets.token_hex(32)) > 160
        assert estimate_key_bits(os.urandom(32)) > 160


@given(st.text(max_size=64))
def test_never_more_than_its_length_in_its_alphabet(text: str) -> None:
    classes = [
        any(c.islower() and c.isascii() for c in text) * 26,
        any(c.isupper() and c.isascii() for c in text) * 26,
        any(c.isdigit() and c.isascii() for c in text) * 10,
        any(c.isascii() and not c.isalnum() for c in text) * 33,
        any(not c.isascii() for c in text) * 128,
    ]
    bound = len(text) * math.log2(max(1, sum(classes)))
    assert 0 <= estimate_bits(text) <= bound + 1e-9
