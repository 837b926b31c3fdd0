"""The one validator every hard negative passes, whatever its source (upstream, rules, LLM)."""

from __future__ import annotations

import re
from typing import Iterable

from ..data.captions import digit_typos, non_latin_runs, norm_caption
from .lexicon import find_matches, polarity

REASONS = ("empty", "equals_positive", "duplicate", "typo", "non_english", "label_not_flipped", "low_overlap")

_STOP = frozenset(
    "a an the is are was were be been being to of on in at by for from with and or but as into onto over under near "
    "beside next while then than this that these those it its his her their them they he she him we you one some "
    "there here who which what where when after before other another both each very up down out off away".split()
)
_WORD = re.compile(r"[a-z][a-z'-]*")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def content_words(text: str) -> set[str]:
    """Lower-cased content words of ``text`` outside its event phrases (those are meant to change)."""
    spans = [(m.start, m.end) for m in find_matches(text)]
    kept = []
    for m in _WORD.finditer(text.lower()):
        if any(s <= m.start() < e for s, e in spans) or m.group() in _STOP:
            continue
        kept.append(_stem(m.group()))
    return set(kept)


def shared_content(positive: str, negative: str) -> float:
    pos = content_words(positive)
    if not pos:
        return 1.0
    neg = {_stem(w) for w in _WORD.findall(negative.lower())}
    return len(pos & neg) / len(pos)


def validate(positive: str, negative: str | None, label_abnormal: bool, *, seen: Iterable[str] = (),
             min_shared_content: float = 0.5) -> tuple[bool, str | None]:
    """``(True, None)`` or ``(False, reason)``, reason one of ``REASONS`` (checked in that order).

    ``seen``: the negatives already kept for this clip (a ``duplicate`` is judged against them, case and final full
    stop ignored). ``label_not_flipped``: the negative's polarity must be the opposite of the clip's label and differ
    from the positive's; a negative whose polarity the lexicon cannot tell is not accepted.
    """
    key = norm_caption(negative or "")
    if not key:
        return False, "empty"
    if key == norm_caption(positive):
        return False, "equals_positive"
    if key in {norm_caption(s) for s in seen}:
        return False, "duplicate"
    if digit_typos(negative):
        return False, "typo"
    if non_latin_runs(negative):
        return False, "non_english"
    want = "normal" if label_abnormal else "abnormal"
    pol = polarity(negative)
    if pol != want or pol == polarity(positive):
        return False, "label_not_flipped"
    if shared_content(positive, negative) < min_shared_content:
        return False, "low_overlap"
    return True, None
