"""Captions of VAGTA-synth in the style of the published VAGTA annotations.

Region captions name the actors, the event and the place; hard negatives keep actors and place and swap the event
for its counterpart (the inversion VAGTA's authors asked an LLM for). Pre-training captions describe only what a
frame looks like (scene, objects, colours) and never an event, so a backbone trained on them is abnormality-blind.
"""

from __future__ import annotations

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


def global_caption(script: VideoScript, ev: EventInstance | None) -> str:
    place = SCENE_PHRASE[script.scene]
    if script.abnormal:
        summary = world.EVENT_BY_NAME[ev.name].summary
        return f"{script.category} abnormal video: {summary} {place}."
    if ev is None:
        return f"Normal video: a regular video featuring a {script.scene} scene."
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
