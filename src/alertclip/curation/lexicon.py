"""Event lexicon: which words or phrases in a caption evidence which anomaly category.

Covers the synthetic world's categories (the verbs of ``synth.world.EVENTS``) and the real UCF-Crime / MSAD
categories. Matching is on word starts, case-insensitive, longest phrase first: a matched phrase consumes its text,
so "smashes into" (a road accident) is not also read as "smashes" (vandalism).
"""

from __future__ import annotations

import re
from functools import lru_cache

# Word stems: a pattern matches a word that starts with it ("collid" -> collides, collided, collision).
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    # --- synthetic world (synth.world.EVENTS) and UCF-Crime ---
    "Fighting": ("punch", "fight", "fought", "attacks", "attacked", "brawl", "scuffle", "wrestl", "grapple",
                 "fist", "throws punches", "exchange blows", "fighting back"),
    "Collapse": ("collaps", "falls down", "fell down", "faint", "drops to the ground", "lies still", "passes out",
                 "passed out", "slumps"),
    "RoadAccidents": ("crash", "collid", "collision", "smashes into", "smashed into", "run over", "ran over",
                      "runs over", "overturn", "rolls over", "rolled over", "hit a vehicle", "hits a vehicle",
                      "hit by a car", "struck by a car", "car accident", "traffic accident", "rear-end", "knocked down by"),
    "Arson": ("set on fire", "sets fire", "set fire", "sets it on fire", "set it on fire", "set alight", "ignit",
              "arson", "poured oil", "pours oil", "poured gasoline", "pours gasoline", "petrol", "burns in flames",
              "flames and smoke rise", "torch"),
    "Snatching": ("snatch", "grabs a bag", "grabbed a bag", "grabs the bag", "purse", "flees with", "steals a bag",
                  "stole a bag"),
    "Vandalism": ("vandal", "smash", "breaks", "broke the", "damag", "knocked off", "knocks off",
                  "kicks the", "graffiti", "spray paint", "shatter the", "smashed"),
    "Explosion": ("explod", "explosion", "blows up", "blew up", "blast", "detonat", "debris flying"),
    # --- UCF-Crime ---
    "Abuse": ("abus", "kneed", "kicked the child", "slap", "beats the", "beat the", "hits the child",
              "mistreat", "child hits", "pushed against", "bullied", "bully", "kicks the child", "hits the woman"),
    "Arrest": ("arrest", "police", "officer", "handcuff", "restrain", "detain", "cop"),
    "Assault": ("assault", "beat", "struck", "strikes", "hit him", "hits him", "attack", "stab", "kicked", "kicks",
                "slammed"),
    "Burglary": ("burglar", "break into", "broke into", "breaks into", "breaking into", "broke in", "pried",
                 "forced open", "sneaks into", "sneaked into", "climbs in", "climbed in"),
    "Robbery": ("robb", "rob", "hold up", "held up", "holdup", "at gunpoint", "at knifepoint", "machete",
                "threaten", "handed a note"),
    "Shooting": ("shoot", "shot", "gunfire", "gunman", "opens fire", "opened fire", "fires a gun", "fired a gun"),
    "Shoplifting": ("shoplift", "pocket", "conceal", "hides the", "hid the", "slips", "stuffs", "under his",
                    "under her", "into his bag", "into her bag", "without paying"),
    "Stealing": ("steal", "stole", "stolen", "theft", "thief", "took the", "takes the", "loaded", "drove off with",
                 "lurk", "carried away", "carries away", "made off"),
    # --- MSAD ---
    "Fire": ("fire", "flame", "burn", "smoke", "blaze", "ablaze"),
    "People_falling": ("fell", "falls", "falling", "fall ", "trips", "tripped", "slips and", "slipped"),
    "Object_falling": ("fell", "falls", "falling", "collapsed onto", "topple", "dropped from"),
    "Traffic_accident": ("crash", "collid", "collision", "run over", "ran over", "overturn", "accident"),
    "Water_incident": ("drown", "flood", "swept away", "into the water", "in the water"),
}

# Categories whose captions legitimately use each other's words (overlapping real-world events).
# A clip's caption matches its own category when it evidences the category or one related to it.
_RELATED_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"Abuse", "Assault", "Fighting", "Arrest"}),
    frozenset({"Robbery", "Stealing", "Shoplifting", "Burglary", "Snatching"}),
    frozenset({"Robbery", "Assault", "Shooting", "Fighting"}),
    frozenset({"Arson", "Fire"}),
    frozenset({"Explosion", "Fire"}),
    frozenset({"Collapse", "People_falling"}),
    frozenset({"RoadAccidents", "Traffic_accident"}),
    frozenset({"Object_falling", "People_falling"}),
)


def related(category: str) -> frozenset[str]:
    """``category`` and the categories whose words may describe it."""
    out = {category}
    for group in _RELATED_GROUPS:
        if category in group:
            out |= group
    return frozenset(out)


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[frozenset[str], re.Pattern]]:
    by_stem: dict[str, set[str]] = {}
    for cat, stems in CATEGORY_WORDS.items():
        for stem in stems:
            by_stem.setdefault(" ".join(stem.lower().split()), set()).add(cat)
    ordered = sorted(by_stem, key=lambda s: (-len(s), s))  # longest phrase first
    return [(frozenset(by_stem[s]), re.compile(r"(?<![a-z])" + r"\s+".join(map(re.escape, s.split())), re.I))
            for s in ordered]


def categories_in(text: str) -> set[str]:
    """Categories whose event words appear in ``text`` (empty set: no event content)."""
    found: set[str] = set()
    masked = text or ""
    for cats, pattern in _patterns():
        spans = [m.span() for m in pattern.finditer(masked)]
        if spans:
            found |= cats
            for a, b in spans:  # a matched phrase is consumed: shorter stems inside it do not count
                masked = masked[:a] + "\0" * (b - a) + masked[b:]
    return found
