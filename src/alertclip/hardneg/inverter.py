"""Rule-based inversion: swap the matched event phrase(s) of a caption for counterpart phrases.

Everything outside the matched phrases (actors, place, punctuation) is kept verbatim. An abnormal caption has every
abnormal phrase replaced (one left behind keeps it abnormal); a normal caption has one normal phrase replaced (one
abnormal event makes the scene abnormal) so the negative keeps as much of the positive as possible.
"""

from __future__ import annotations

import itertools
import random

from ..data.captions import norm_caption
from .lexicon import Match, alternatives, find_matches

_MAX_COMBOS = 512
_ARTICLES = {"the", "a", "an"}


def _render(text: str, match: Match, template: str) -> str:
    out = template
    original = text[match.start:match.end]
    for slot in ("a", "b"):
        if "{" + slot + "}" not in out:
            continue
        value = match.slots.get(slot, "")
        first = value.split(" ", 1)[0]
        moved = not template.startswith("{" + slot + "}") and original.startswith(value)
        if moved and first.lower() in _ARTICLES and first[:1].isupper():
            value = value[0].lower() + value[1:]
        out = out.replace("{" + slot + "}", value)
    at_sentence_start = match.start == 0 or text[: match.start].rstrip().endswith((".", "!", "?"))
    if original[:1].isupper() and at_sentence_start:
        out = out[0].upper() + out[1:]
    return out


def _apply(text: str, replacements: list[tuple[Match, str]]) -> str:
    out = text
    for match, template in sorted(replacements, key=lambda r: r[0].start, reverse=True):
        out = out[: match.start] + _render(text, match, template) + out[match.end:]
    return out


def invert(caption: str, k: int, rng: random.Random | int | None = None) -> list[str]:
    """Up to ``k`` distinct inversions of ``caption`` (fewer when the lexicon lacks alternatives; never padded)."""
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    matches = [m for m in find_matches(caption) if alternatives(m)]
    if not matches or k <= 0:
        return []
    abnormal = [m for m in matches if m.phrase.polarity == "abnormal"]
    candidates: list[list[tuple[Match, str]]] = []
    if abnormal:
        if any(not alternatives(m) for m in abnormal):
            return []
        for combo in itertools.islice(itertools.product(*(alternatives(m) for m in abnormal)), _MAX_COMBOS):
            candidates.append(list(zip(abnormal, combo)))
    else:
        candidates = [[(m, alt)] for m in matches for alt in alternatives(m)]
    rng.shuffle(candidates)
    # Prefer variety: candidates whose first replacement differs from those already taken come first.
    out: list[str] = []
    seen = {norm_caption(caption)}
    for cand in candidates:
        text = _apply(caption, cand)
        key = norm_caption(text)
        if key not in seen:
            seen.add(key)
            out.append(text)
            if len(out) == k:
                break
    return out
