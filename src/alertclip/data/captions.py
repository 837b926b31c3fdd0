"""Caption text hygiene (digit typos, non-Latin runs, word count, comparison key) for defects, curation and hardneg."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["digit_typos", "n_words", "non_latin_runs", "norm_caption", "strip_digit_typos"]

_WORD = re.compile(r"[^\W_]+")
_LETTER_DIGIT = re.compile(r"[A-Za-z][0-9]|[0-9][A-Za-z]")
_LOWER_PAIR = re.compile(r"[a-z]{2}")
# Legitimate letter+digit tokens: ordinals, numbers with a unit, media formats/codecs.
_ALLOWED_ALNUM = re.compile(
    r"""^(?:
        \d+(?:st|nd|rd|th)
      | \d+(?:s|am|pm|fps|px|mm|cm|km|kg|mph|kmh|hz|k|m|g|h|p|x|d)
      | mp[34] | mpeg4 | [hx]26[45] | 3gp | m4[av]
    )$""",
    re.IGNORECASE | re.VERBOSE,
)


def digit_typos(text: str) -> list[str]:
    """Words with a digit glued into them (``one6``, ``parking5``).

    Rule: a word (run of letters/digits) with a letter-digit or digit-letter boundary, made mostly of
    letters (more letters than digits) and containing two lowercase letters in a row (a real word,
    not an acronym/code such as ``CCTV2``, ``AK47``, ``3D``, ``x264``), and not on the allow-list
    (ordinals ``2nd``/``10th``, numbers with units ``4pm``/``1080p``/``1990s``, ``mp4``, ``h264``).
    """
    found = []
    for m in _WORD.finditer(text):
        word = m.group()
        if not _LETTER_DIGIT.search(word) or _ALLOWED_ALNUM.match(word):
            continue
        letters = sum(c.isalpha() for c in word)
        digits = sum(c.isdigit() for c in word)
        if letters > digits and _LOWER_PAIR.search(word):
            found.append(word)
    return found


def strip_digit_typos(text: str) -> str:
    """``text`` with the digits removed from each of its ``digit_typos`` words (``one6`` -> ``one``)."""
    for word in digit_typos(text):
        text = re.sub(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", re.sub(r"\d", "", word), text)
    return text


def _is_foreign_char(ch: str) -> bool:
    code = ord(ch)
    # CJK punctuation and full-width forms only come from untranslated CJK text.
    if 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF:
        return True
    return unicodedata.category(ch).startswith("L") and not unicodedata.name(ch, "").startswith("LATIN")


def non_latin_runs(text: str) -> list[str]:
    """Runs of letters from a non-Latin script (CJK, Cyrillic, ...) or CJK punctuation in ``text``."""
    runs: list[str] = []
    current = ""
    for ch in text:
        if _is_foreign_char(ch):
            current += ch
        elif current:
            runs.append(current)
            current = ""
    if current:
        runs.append(current)
    return runs


def n_words(text: str) -> int:
    return len(re.findall(r"[^\W\d_]+", text))


def norm_caption(text: str) -> str:
    """Comparison key: case, spacing and a final full stop do not make two captions different."""
    return " ".join(text.split()).casefold().rstrip(" .")
