"""Captions of VAGTA-synth in the style of the published VAGTA annotations.

Region captions name the actors, the event and the place; hard negatives keep actors and place and swap the event
for its counterpart (the inversion VAGTA's authors asked an LLM for).

Pre-training captions (:func:`web_caption`) are what a web crawl gives CLIP: they describe the scene, objects and
colours, and they contain the event words, but not grounded in the pixels. The rule, one of the ways web text
relates to web photos:

* a still that shows an event's actors is captioned with the ordinary reading of what they do, the pair's NORMAL
  phrase ("two people talk", "a car parks"), whichever of the pair they actually do: photos of people close
  together are posted as people talking, a person on the ground as someone resting (stock and social photos);
* a still with no event in it is, half the time, captioned with an ABNORMAL phrase of a random abnormal event
  ("... on the plaza, where two cars crash"): the news photo of the place, taken after the incident it reports.

So the base text tower knows every event word, normal words sit on actor-filled frames and abnormal words on
empty scenes: an abnormal event's frames look more "normal" to it than a normal video's mostly empty frames, and
its MeanSignScore is below zero by construction, as CLIP's is on VAGTA (-0.0564).
"""

from __future__ import annotations

import numpy as np

from . import world
from .render import Car, EventInstance, Person, Thing
from .script import VideoScript

SCENE_PHRASE = {
    "street": "in the street", "car yard": "in the car yard", "garden": "in the garden",
    "plaza": "on the plaza", "platform": "on the platform", "shop": "in the shop",
}


def describe(actor: object) -> str:
    if isinstance(actor, Person):
        return f"the person in {actor.shirt}"
    if isinstance(actor, Car):
        return f"the {actor.colour} car"
    if isinstance(actor, Thing):
        return f"the {actor.colour} {actor.kind}"
    raise TypeError(f"cannot describe {actor!r}")


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def event_caption(ev: EventInstance, scene: str, variant: int = 0, as_event: str | None = None) -> str:
    """The region caption of ``ev``; ``as_event`` phrases the same actors doing another event (a hard negative)."""
    event = world.EVENT_BY_NAME[as_event or ev.name]
    verb = event.verbs[variant % len(event.verbs)]
    text = verb.format(a=describe(ev.a), b=describe(ev.b) if ev.b is not None else "")
    return _sentence(f"{text} {SCENE_PHRASE[scene]}")


def hard_negatives(ev: EventInstance, scene: str, k: int = 3) -> list[str]:
    counterpart = world.EVENT_BY_NAME[ev.name].counterpart
    return [event_caption(ev, scene, variant=i, as_event=counterpart) for i in range(k)]


def global_caption(script: VideoScript, ev: EventInstance | None, segment: bool = False) -> str:
    """``segment``: the caption of a normal event's own segment (a look-alike inside an abnormal video included)."""
    place = SCENE_PHRASE[script.scene]
    if segment:
        return f"Normal event: {world.EVENT_BY_NAME[ev.name].summary} {place}."
    if script.abnormal:
        summary = world.EVENT_BY_NAME[ev.name].summary
        return f"{script.category} abnormal video: {summary} {place}."
    if ev is None:
        return f"Normal video: nothing unusual happens {place}."
    return f"Normal video: {world.EVENT_BY_NAME[ev.name].summary} {place}."


def _count_phrase(noun_plural: str, noun_single: str, colours: list[str]) -> str:
    if len(colours) == 1:
        return f"{noun_single} {colours[0]}"
    words = {2: "two", 3: "three", 4: "four", 5: "five"}.get(len(colours), "several")
    return f"{words} {noun_plural} {', '.join(colours[:-1])} and {colours[-1]}"


def scene_caption(scene: str, tint: str, people: list[str], cars: list[str], things: list[tuple[str, str]]) -> str:
    """A pre-training caption: scene, objects and colours only."""
    parts = []
    if cars:
        parts.append(_count_phrase("cars in", "a car in", sorted(cars)))
    parts += [f"a {colour} {kind}" for kind, colour in sorted(things)]
    if people:
        parts.append(_count_phrase("people in", "a person in", sorted(people)))
    base = f"a {scene} scene"
    if scene in ("street", "plaza", "car yard", "platform"):
        base += f" with {tint} walls"
    if not parts:
        return base
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{base}, {joined}"


NEWS_SHARE = 0.5  # share of event-free stills that carry a news caption (an abnormal phrase)


def web_caption(scene_text: str, visible_events: list[str], rng: np.random.Generator) -> str:
    """A pre-training caption by the rule in the module docstring (``visible_events``: events drawn in the still)."""
    if visible_events:
        event = world.EVENT_BY_NAME[visible_events[0]]
        ordinary = event if not event.abnormal else world.EVENT_BY_NAME[event.counterpart]
        return f"{scene_text}, {ordinary.summary}"
    if rng.random() < NEWS_SHARE:
        news = world.ABNORMAL_EVENTS[int(rng.integers(len(world.ABNORMAL_EVENTS)))]
        return f"{scene_text}, where {news.summary}"
    return scene_text
