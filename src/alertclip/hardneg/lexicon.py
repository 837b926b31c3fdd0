"""Paired event phrases (abnormal <-> normal) for hard-negative inversion and caption polarity.

Two sources, one lexicon:

* **VAGTA-synth**: every phrasing of every ``world.EVENTS`` event, with its ``{a}``/``{b}`` actor slots, paired with
  all phrasings of its counterpart event. Derived from ``world.EVENTS`` at import time, so it cannot drift.
* **Published UCF-Crime / MSAD captions**: verb phrases (``punches`` <-> ``waves at``...) given by their base form and
  inflected (``-s``, past, ``-ing``, base) so ``robbed``, ``is burning`` and ``hits`` all match; each phrase has several
  counterpart alternatives of the opposite label, in both directions.

A few single words/idioms carry polarity without being invertible (``calmly``, ``in panic``): ``CUES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from ..synth import world

Polarity = Literal["abnormal", "normal"]
FORMS = ("s", "ing", "past", "base")

# --------------------------------------------------------------------------------------------------
# Inflection
# --------------------------------------------------------------------------------------------------

_IRREGULAR: dict[str, tuple[str, str, str]] = {  # base -> (s, past, ing)
    "hit": ("hits", "hit", "hitting"), "shoot": ("shoots", "shot", "shooting"), "steal": ("steals", "stole", "stealing"),
    "break": ("breaks", "broke", "breaking"), "fall": ("falls", "fell", "falling"), "fight": ("fights", "fought", "fighting"),
    "sit": ("sits", "sat", "sitting"), "set": ("sets", "set", "setting"), "strike": ("strikes", "struck", "striking"),
    "buy": ("buys", "bought", "buying"), "blow": ("blows", "blew", "blowing"), "run": ("runs", "ran", "running"),
    "light": ("lights", "lit", "lighting"), "beat": ("beats", "beat", "beating"), "throw": ("throws", "threw", "throwing"),
    "take": ("takes", "took", "taking"), "give": ("gives", "gave", "giving"), "stand": ("stands", "stood", "standing"),
    "hold": ("holds", "held", "holding"), "drive": ("drives", "drove", "driving"), "meet": ("meets", "met", "meeting"),
    "leave": ("leaves", "left", "leaving"), "put": ("puts", "put", "putting"), "have": ("has", "had", "having"),
    "pat": ("pats", "patted", "patting"), "stop": ("stops", "stopped", "stopping"), "rob": ("robs", "robbed", "robbing"),
    "grab": ("grabs", "grabbed", "grabbing"), "drop": ("drops", "dropped", "dropping"), "hug": ("hugs", "hugged", "hugging"),
    "stab": ("stabs", "stabbed", "stabbing"), "slap": ("slaps", "slapped", "slapping"), "tap": ("taps", "tapped", "tapping"),
    "drag": ("drags", "dragged", "dragging"), "shop": ("shops", "shopped", "shopping"), "chat": ("chats", "chatted", "chatting"),
    "slam": ("slams", "slammed", "slamming"), "flee": ("flees", "fled", "fleeing"), "queue": ("queues", "queued", "queuing"),
    "eat": ("eats", "ate", "eating"), "lie": ("lies", "lay", "lying"), "sweep": ("sweeps", "swept", "sweeping"),
    "sneak": ("sneaks", "sneaked", "sneaking"), "knock": ("knocks", "knocked", "knocking"), "get": ("gets", "got", "getting"),
    "swing": ("swings", "swung", "swinging"), "see": ("sees", "saw", "seeing"), "go": ("goes", "went", "going"),
    "lead": ("leads", "led", "leading"),
}


def inflect(base: str) -> dict[str, str]:
    """Forms of a phrase whose first word is a verb: ``{"base", "s", "past", "ing"}``."""
    verb, _, rest = base.partition(" ")
    tail = f" {rest}" if rest else ""
    if verb in _IRREGULAR:
        s, past, ing = _IRREGULAR[verb]
    else:
        if re.search(r"(s|sh|ch|x|z|o)$", verb):
            s = verb + "es"
        elif re.search(r"[^aeiou]y$", verb):
            s = verb[:-1] + "ies"
        else:
            s = verb + "s"
        if verb.endswith("e"):
            past, ing = verb + "d", (verb if verb.endswith("ee") else verb[:-1]) + "ing"
        elif re.search(r"[^aeiou]y$", verb):
            past, ing = verb[:-1] + "ied", verb + "ing"
        else:
            past, ing = verb + "ed", verb + "ing"
    return {"base": base, "s": s + tail, "past": past + tail, "ing": ing + tail}


# --------------------------------------------------------------------------------------------------
# Lexicon data
# --------------------------------------------------------------------------------------------------

# Published captions: abnormal base phrase -> normal alternatives, and normal base phrase -> abnormal alternatives.
# "{b}" marks an object slot that moves (a noun phrase or pronoun); other objects simply follow the phrase.
ABNORMAL_TO_NORMAL: dict[str, tuple[str, ...]] = {
    "punch": ("wave at", "greet", "high-five"),
    "hit": ("pat", "tap", "touch"),
    "strike": ("pat", "tap", "greet"),
    "beat": ("help", "greet", "talk to"),
    "kick": ("walk past", "step around", "stand next to"),
    "crash into": ("park beside", "drive past", "stop next to"),
    "collide with": ("drive past", "park beside", "stop next to"),
    "smash into": ("park beside", "pull up next to", "drive past"),
    "run over": ("drive past", "stop for", "go around"),
    "overturn": ("drive past", "pass", "tow"),
    "collapse": ("sit down", "rest", "kneel down"),
    "faint": ("rest", "sit down", "lie down to rest"),
    "fall to the ground": ("sit down on the ground", "kneel on the ground", "rest on the ground"),
    "fall down": ("sit down", "kneel down", "bend down"),
    "fall": ("sit", "kneel", "rest"),
    "set fire to": ("light a lamp near", "light a candle near", "put a lamp near"),
    "set {b} on fire": ("light a lamp near {b}", "put a lamp beside {b}", "light candles near {b}"),
    "burn": ("glow", "shine", "warm up"),
    "steal": ("buy", "pick up", "carry"),
    "snatch": ("buy", "pick up", "carry"),
    "loot": ("browse", "buy", "carry"),
    "rob": ("talk to", "visit", "shop at"),
    "shoot at": ("point at", "wave at", "look at"),
    "shoot": ("point at", "photograph", "wave at"),
    "break into": ("enter", "walk into", "visit"),
    "break": ("clean", "fix", "repair"),
    "smash": ("clean", "wipe", "polish"),
    "shatter": ("clean", "polish", "wipe"),
    "vandalize": ("clean", "paint", "repair"),
    "explode": ("glow", "shine", "light up"),
    "blow up": ("light up", "glow", "shine"),
    "fight with": ("talk with", "chat with", "play with"),
    "fight": ("talk", "chat", "play"),
    "attack": ("greet", "approach", "hug"),
    "assault": ("greet", "help", "hug"),
    "grab": ("hand", "pass", "hold"),
    "push": ("help", "guide", "hug"),
    "shove": ("hug", "pat", "help"),
    "drag": ("lead", "guide", "walk with"),
    "slam": ("lean", "place", "put"),
    "stab": ("hug", "greet", "tap"),
    "slash": ("clean", "wipe", "touch"),
    "slap": ("pat", "tap", "touch"),
    "chase": ("follow", "walk with", "walk behind"),
    "threaten": ("talk to", "greet", "help"),
    "throw": ("place", "put", "carry"),
    "knock off": ("adjust", "touch", "clean"),
    "restrain": ("help", "escort", "guide"),
    "arrest": ("greet", "help", "escort"),
    "flee": ("walk away", "leave", "stroll away"),
    "run away": ("walk away", "stroll away", "leave"),
    "lurk around": ("walk around", "stand near", "wait near"),
}

NORMAL_TO_ABNORMAL: dict[str, tuple[str, ...]] = {
    "wave at": ("punch", "hit", "shoot at"),
    "talk with": ("fight with", "wrestle with", "brawl with"),
    "talk to": ("attack", "threaten", "rob"),
    "talk": ("fight", "brawl", "scuffle"),
    "chat with": ("fight with", "wrestle with", "brawl with"),
    "greet": ("attack", "punch", "shove"),
    "pat": ("hit", "slap", "strike"),
    "hug": ("attack", "strangle", "shove"),
    "help": ("attack", "push", "beat"),
    "walk past": ("kick", "attack", "punch"),
    "walk": ("run in panic", "fight", "collapse"),
    "sit down": ("collapse", "fall down", "faint"),
    "sit": ("fall", "collapse", "slump"),
    "rest": ("collapse", "faint", "slump"),
    "stand": ("collapse", "fall", "faint"),
    "work": ("fight", "brawl", "struggle"),
    "shop": ("steal", "loot", "shoplift"),
    "buy": ("steal", "snatch", "loot"),
    "move": ("fight", "brawl", "collide"),
    "park beside": ("crash into", "collide with", "smash into"),
    "park": ("crash", "collide", "overturn"),
    "drive past": ("crash into", "hit", "run over"),
    "drive": ("crash", "swerve", "collide"),
    "queue": ("fight", "brawl", "push"),
    "eat": ("fight", "brawl", "collapse"),
    "have a meeting": ("have a fight", "brawl", "fight"),
    "play with": ("fight with", "attack", "wrestle with"),
    "play": ("fight", "brawl", "wrestle"),
    "enter": ("storm", "break into", "sneak into"),
    "exit": ("flee", "run away from", "escape"),
    "leave": ("flee", "run away", "escape"),
    "watch": ("attack", "chase", "threaten"),
    "clean": ("break", "smash", "vandalize"),
    "fix": ("break", "smash", "damage"),
    "repair": ("break", "smash", "damage"),
    "hand": ("grab", "snatch", "steal"),
    "give": ("snatch", "grab", "steal"),
    "take": ("steal", "snatch", "grab"),
    "deliver": ("steal", "throw", "smash"),
    "light a lamp near": ("set fire to", "throw a firebomb at", "burn"),
    "cross": ("collide with", "crash into", "fall on"),
    "point at": ("shoot at", "shoot", "fire at"),
}

# Polarity-only cues (not inverted): idioms and adverbs that mark a caption as abnormal / normal.
CUES: dict[Polarity, tuple[str, ...]] = {
    "abnormal": ("in panic", "panic", "frantically", "floating", "floats", "levitates", "levitating",
                 "flying through the air", "explosion", "blast", "on fire", "in flames", "violently", "unconscious", "collision",
                 "bleeding", "injured", "wrestle", "wrestles", "wrestling", "brawl", "brawls", "brawling", "scuffle",
                 "strangle", "strangles", "shoplift", "shoplifts", "swerve", "swerves", "damage", "damages", "firebomb"),
    "normal": ("calmly", "peacefully", "safely", "without incident", "casually", "quietly", "routine", "gently",
               "playfully", "leisurely", "normally", "orderly"),
}

# --------------------------------------------------------------------------------------------------
# Compiled phrases
# --------------------------------------------------------------------------------------------------

_SLOT = {
    # Actor noun phrase: "the person in red", "the red car", "a bag", or a pronoun.
    "np": r"(?:(?:the|a|an)\s+(?:[\w-]+\s+in\s+(?!the\b|a\b|an\b)[\w-]+|[\w-]+\s+(?!(?:in|on|with|and|at|near|beside"
          r"|from|to|is|are|was|into|onto|by)\b)[\w-]+|[\w-]+)|it|him|her|them)",
}


def _pattern(template: str) -> re.Pattern[str]:
    tokens = []
    for word in template.split():
        tokens.append(f"(?P<{word[1]}>{_SLOT['np']})" if word in ("{a}", "{b}") else re.escape(word))
    return re.compile(r"(?<![\w-])" + r"\s+".join(tokens) + r"(?![\w-])", re.IGNORECASE)


@dataclass(frozen=True)
class Phrase:
    """One phrasing in one grammatical form; ``group`` pairs it with the alternatives it inverts to."""

    template: str  # with optional {a}/{b} slots
    polarity: Polarity
    form: str  # one of FORMS, or "synth" for world phrasings
    group: str  # id of the pair
    event: str | None = None  # world event name for VAGTA-synth phrasings
    priority: int = 1  # 0 wins over 1 on overlapping matches (synth phrasings are exact)
    pattern: re.Pattern[str] = field(compare=False, repr=False, default=None)  # type: ignore[assignment]


@dataclass(frozen=True)
class Lexicon:
    phrases: tuple[Phrase, ...]
    # (group, polarity of the source phrase, form) -> the counterpart templates
    alternatives: dict[tuple[str, str, str], tuple[str, ...]]
    cues: tuple[tuple[re.Pattern[str], Polarity], ...]


def _opposite(pol: Polarity) -> Polarity:
    return "normal" if pol == "abnormal" else "abnormal"


def _make(template: str, polarity: Polarity, form: str, group: str, event: str | None = None, priority: int = 1):
    return Phrase(template, polarity, form, group, event, priority, _pattern(template))


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    phrases: list[Phrase] = []
    alts: dict[tuple[str, str, str], tuple[str, ...]] = {}
    # VAGTA-synth: one group per event; a phrasing inverts to every phrasing of the counterpart event.
    for event in world.EVENTS:
        pol: Polarity = "abnormal" if event.abnormal else "normal"
        for verb in event.verbs:
            phrases.append(_make(verb, pol, "synth", f"synth:{event.name}", event.name, priority=0))
        alts[(f"synth:{event.name}", pol, "synth")] = world.counterpart(event.name).verbs
    # Published captions: one group per source phrase; inflected alike on both sides.
    # Every alternative is itself a phrase of the opposite polarity: a target that is not a source of its own
    # inverts back to the phrases that named it (so each pair works in both directions).
    tables: dict[Polarity, dict[str, list[str]]] = {
        "abnormal": {b: list(t) for b, t in ABNORMAL_TO_NORMAL.items()},
        "normal": {b: list(t) for b, t in NORMAL_TO_ABNORMAL.items()},
    }
    for pol, table in list(tables.items()):
        back = tables[_opposite(pol)]
        for base, targets in list(table.items()):
            for t in targets:
                if t not in back and t not in tables[pol]:
                    back.setdefault(t, [])
                if t in back and base not in back[t] and t not in (NORMAL_TO_ABNORMAL if pol == "abnormal"
                                                                     else ABNORMAL_TO_NORMAL):
                    back[t].append(base)
    for pol, table in tables.items():
        for base, targets in table.items():
            group = f"{pol}:{base}"
            forms = inflect(base)
            target_forms = [inflect(t) for t in targets]
            for form in FORMS:
                phrases.append(_make(forms[form], pol, form, group))
                alts[(group, pol, form)] = tuple(tf[form] for tf in target_forms)
    cues = tuple((re.compile(r"(?<![\w-])" + re.escape(c) + r"(?![\w-])", re.IGNORECASE), pol)
                 for pol, words in CUES.items() for c in words)
    return Lexicon(tuple(phrases), alts, cues)


# --------------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------------

_DETERMINER_BEFORE = re.compile(r"\b(?:the|a|an|of|this|that|these|those|his|her|its|their|my|our|your)\s+$", re.I)
_MODAL_BEFORE = re.compile(r"\b(?:to|will|would|can|could|may|might|must|should|did|does|do|not|n't)\s*$", re.I)


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    phrase: Phrase
    slots: dict[str, str]

    @property
    def text(self) -> str:
        return f"[{self.start}:{self.end}]"


def find_matches(text: str) -> list[Match]:
    """Non-overlapping event-phrase matches, preferring synth phrasings, then the longest, then the earliest."""
    found: list[Match] = []
    for ph in lexicon().phrases:
        for m in ph.pattern.finditer(text):
            if ph.form != "synth" and _DETERMINER_BEFORE.search(text[: m.start()]):
                continue  # a noun ("in the shop", "a fall"), not the verb
            found.append(Match(m.start(), m.end(), ph, {k: v for k, v in m.groupdict().items() if v is not None}))
    # An ambiguous form (hit/hit, set/set) after "to"/"will"... is the base form.
    def rank(mt: Match) -> tuple:
        base_pref = 0
        if mt.phrase.form in ("base", "past"):
            want = "base" if _MODAL_BEFORE.search(text[: mt.start]) else "past"
            base_pref = 0 if mt.phrase.form == want else 1
        return (mt.phrase.priority, -(mt.end - mt.start), base_pref, FORMS.index(mt.phrase.form)
                if mt.phrase.form in FORMS else -1, mt.start)

    chosen: list[Match] = []
    taken: list[tuple[int, int]] = []
    for mt in sorted(found, key=rank):
        if all(mt.end <= s or mt.start >= e for s, e in taken):
            chosen.append(mt)
            taken.append((mt.start, mt.end))
    return sorted(chosen, key=lambda mt: mt.start)


def alternatives(match: Match) -> tuple[str, ...]:
    ph = match.phrase
    return lexicon().alternatives.get((ph.group, ph.polarity, ph.form), ())


def polarity(text: str) -> Polarity | None:
    """``"abnormal"`` when any abnormal phrase or cue matches (one abnormal event makes the scene abnormal),
    ``"normal"`` when only normal ones match, else ``None``."""
    pols = {m.phrase.polarity for m in find_matches(text)}
    pols |= {pol for pat, pol in lexicon().cues if pat.search(text)}
    if "abnormal" in pols:
        return "abnormal"
    return "normal" if "normal" in pols else None
