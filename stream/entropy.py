"""An estimate of how many bits of guessing a secret costs, for the startup checks.

Not a password meter: it only has to tell a random token (`secrets.token_urlsafe(32)`,
`openssl rand -hex 32`, 32 random bytes) from a value a person made up
(`YOUR_WRITE_KEY_HERE_123`, `password12345678`, `admin-token-admin-token-admin`), and to
err towards the person. It reads the value left to right as a guesser would try it, and each
piece costs:

- a repeat of four or more characters that occurred earlier (`…token-admin-token`): one
  character's worth;
- a run of three or more characters that climb, fall or stay the same (`1234`, `abcd`, `zzz`):
  one character's worth and one bit for the direction;
- a common word of secrets and placeholders (`key`, `password`, `here`), or a run of four or
  more letters in one case that reads like a word (a vowel in every four letters, no four
  consonants in a row): 14 bits, plus 2 per letter past the fourth (a guesser's dictionary);
- any other character: log2 of the alphabet its character classes span (26 lower, 26 upper,
  10 digits, 33 for other ASCII, 128 for anything else).

Random tokens lose a few bits to chance repeats, runs and word-like letters; values a person
typed lose most of theirs. `tests/test_credentials.py` measures both sides.
"""

from __future__ import annotations

import math
import string

# Words that people put in keys and tokens, and in placeholders; a random secret has none.
_WORD_LIST = """
    key keys secret secrets token tokens password passwd pass pwd admin administrator root user
    guest login write read your here test testing demo dev development prod production stage
    staging example sample change replace default insert enter put goes value leadstream lead
    leads browser server website web site api app webhook hook signing mailgun sendgrid generic
    identity social crm hmac whsec the and for new old temp tmp todo fixme qwerty letmein
    welcome hello abc xyz foo bar baz
"""
WORDS = frozenset(_WORD_LIST.split())
_VOWELS = frozenset("aeiouy")
_OTHER = 128
_LONGEST_TEXT = 1024
_LONGEST_WORD = max(len(w) for w in WORDS)
_MIN_RUN = 3
_MIN_REPEAT = 4
_VOWEL_EVERY = 4
_WORD_BITS = 14.0
_WORD_LETTER_BITS = 2.0


def estimate_bits(text: str) -> float:
    """Estimated bits of guessing `text` costs (see the module docstring)."""
    text = text[:_LONGEST_TEXT]  # a longer value is judged by its start (the cost is quadratic)
    if not text:
        return 0.0
    per_char = math.log2(_alphabet(text))
    lowered = text.lower()
    bits = 0.0
    i = 0
    while i < len(text):
        step, cost = _piece(text, lowered, i, per_char)
        bits += cost
        i += step
    return bits


def estimate_key_bits(key: bytes) -> float:
    """Estimated bits of a binary key: printable ASCII is judged as text (a key that is a
    typed phrase or digits, base64-encoded, is no stronger than the phrase); other bytes cost
    8 bits each, less repeats and runs."""
    if all(32 <= b < 127 for b in key):
        return estimate_bits(key.decode("ascii"))
    text = key[:_LONGEST_TEXT].decode("latin-1")
    bits = 0.0
    i = 0
    while i < len(text):  # every piece costs one byte's 8 bits: a repeat, a run, or a byte
        repeat, run = _repeat(text, i), _run(text, i)
        i += max(1, repeat if repeat >= _MIN_REPEAT else 0, run if run >= _MIN_RUN else 0)
        bits += 8.0
    return bits


def _piece(text: str, lowered: str, i: int, per_char: float) -> tuple[int, float]:
    """(characters consumed, bits) of the cheapest reading of `text[i:]`'s next piece."""
    best = (1, per_char)
    word = _word(text, lowered, i)
    if word:
        best = min(best, (word, _WORD_BITS + _WORD_LETTER_BITS * max(0, word - 4)), key=_rate)
    repeat = _repeat(lowered, i)
    if repeat >= _MIN_REPEAT:
        best = min(best, (repeat, per_char), key=_rate)
    run = _run(lowered, i)
    if run >= _MIN_RUN:
        best = min(best, (run, per_char + 1.0), key=_rate)
    return best


def _rate(piece: tuple[int, float]) -> float:
    """Bits per character consumed: the reading a guesser prefers is the cheapest per char."""
    return piece[1] / piece[0]


def _alphabet(text: str) -> int:
    """The number of characters a guesser must try per position, from the classes present."""
    size = 0
    size += 26 if any(c in string.ascii_lowercase for c in text) else 0
    size += 26 if any(c in string.ascii_uppercase for c in text) else 0
    size += 10 if any(c in string.digits for c in text) else 0
    size += 33 if any(c.isascii() and not c.isalnum() for c in text) else 0
    size += _OTHER if any(not c.isascii() for c in text) else 0
    return size


def _repeat(text: str, i: int) -> int:
    """Length of the longest piece at `i` that already occurred starting before `i`."""
    length = 0
    while i + length < len(text) and text.find(text[i : i + length + 1], 0, i + length) != -1:
        length += 1
    return length


def _run(text: str, i: int) -> int:
    """Length of the run at `i` whose code points climb, fall or stay the same by one step."""
    if i + 1 >= len(text):
        return 1
    delta = ord(text[i + 1]) - ord(text[i])
    if delta not in (-1, 0, 1):
        return 1
    end = i + 1
    while end + 1 < len(text) and ord(text[end + 1]) - ord(text[end]) == delta:
        end += 1
    return end - i + 1


def _word(text: str, lowered: str, i: int) -> int:
    """Length of the longest word at `i`, 0 when none starts here: a listed word (3+ letters,
    any case, anywhere), or a run of 4+ letters in one case (`word`, `WORD`, `Word`) that
    starts after a non-letter and reads like a word."""
    best = 0
    for length in range(min(len(lowered) - i, _LONGEST_WORD), 2, -1):
        if lowered[i : i + length] in WORDS:
            best = length
            break
    if i > 0 and text[i - 1].isalpha():
        return best
    # `Word` and `WORD` as well as `word`; a case change inside ends the run (`KmfaLp`)
    end = i + 1 if text[i] in string.ascii_uppercase else i
    case = string.ascii_uppercase if text[i : i + 3].isupper() else string.ascii_lowercase
    while end < len(text) and text[end] in case:
        end += 1
    letters = end - i
    if letters >= 4 and _pronounceable(lowered[i:end]):
        best = max(best, letters)
    return best


def _pronounceable(letters: str) -> bool:
    """A vowel in every four letters, no four consonants in a row: reads like a word."""
    consonants = 0
    for c in letters:
        consonants = 0 if c in _VOWELS else consonants + 1
        if consonants >= 4:
            return False
    return sum(c in _VOWELS for c in letters) * _VOWEL_EVERY >= len(letters)
