"""The vocabulary of VAGTA-synth: scenes, colours, actors and the paired events.

Every abnormal event has a visually similar normal counterpart (same actors, same place, a different action), so a
model that only knows appearance cannot tell them apart. Caption phrasings live here, next to the events they
describe, so the captioner, the hard-negative inverter and the tests share one lexicon.
"""

from __future__ import annotations

from dataclasses import dataclass

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40),
    "blue": (40, 70, 210),
    "green": (40, 160, 60),
    "yellow": (230, 210, 40),
    "white": (235, 235, 235),
    "black": (25, 25, 25),
    "orange": (240, 130, 20),
    "purple": (140, 50, 170),
}

# Scene names avoid event words ("park", "parking") so scene captions never leak an event.
SCENES: tuple[str, ...] = ("street", "car yard", "garden", "plaza", "platform", "shop")

# Objects an "object" event can happen to; the renderer draws each.
OBJECTS: tuple[str, ...] = ("car", "bin", "kiosk")


@dataclass(frozen=True)
class Event:
    name: str  # snake_case id used in files
    abnormal: bool
    counterpart: str  # the visually similar event of the opposite label
    category: str  # UCF-style video category (abnormal) or "Normal"
    actors: str  # what the renderer places: "two_people", "person", "two_cars", "object", "person_object"
    verbs: tuple[str, ...]  # region-caption phrasings with {a} / {b} slots; the first is the canonical one
    summary: str  # global-caption phrase


EVENTS: tuple[Event, ...] = (
    Event("fighting", True, "talking", "Fighting", "two_people",
          ("{a} punches {b}", "{a} fights with {b}", "{a} attacks {b}"), "two people fight"),
    Event("talking", False, "fighting", "Normal", "two_people",
          ("{a} talks with {b}", "{a} chats with {b}", "{a} greets {b}"), "two people talk"),
    Event("collapsing", True, "sitting_down", "Collapse", "person",
          ("{a} collapses onto the ground", "{a} falls down and lies still", "{a} faints and drops to the ground"),
          "a person collapses"),
    Event("sitting_down", False, "collapsing", "Normal", "person",
          ("{a} sits down on a bench", "{a} rests on a bench", "{a} takes a seat on a bench"),
          "a person sits down"),
    Event("car_crash", True, "parking", "RoadAccidents", "two_cars",
          ("{a} crashes into {b}", "{a} collides with {b}", "{a} smashes into {b}"), "two cars crash"),
    Event("parking", False, "car_crash", "Normal", "two_cars",
          ("{a} parks beside {b}", "{a} pulls up next to {b}", "{a} stops neatly beside {b}"), "a car parks"),
    Event("arson", True, "lamp_glow", "Arson", "object",
          ("{a} is set on fire", "{a} burns in flames", "flames and smoke rise from {a}"),
          "something is set on fire"),
    Event("lamp_glow", False, "arson", "Normal", "object",
          ("a street lamp glows beside {a}", "a lamp shines warmly next to {a}", "a lamp lights up beside {a}"),
          "a lamp glows"),
    Event("snatching", True, "handing_over", "Snatching", "two_people",
          ("{a} snatches a bag from {b} and runs", "{a} grabs a bag from {b} and flees",
           "{a} steals a bag from {b} and runs away"), "a bag is snatched"),
    Event("handing_over", False, "snatching", "Normal", "two_people",
          ("{a} hands a bag to {b}", "{a} gives a bag to {b}", "{a} passes a bag to {b}"),
          "a bag is handed over"),
    Event("vandalism", True, "cleaning", "Vandalism", "person_object",
          ("{a} smashes {b} with a stick", "{a} vandalizes {b}", "{a} breaks {b} with a stick"),
          "someone damages property"),
    Event("cleaning", False, "vandalism", "Normal", "person_object",
          ("{a} cleans {b} with a cloth", "{a} wipes {b} with a cloth", "{a} washes {b} with a cloth"),
          "someone cleans property"),
    Event("explosion", True, "fireworks", "Explosion", "object",
          ("{a} explodes", "{a} blows up in a blast", "a blast destroys {a}"), "an explosion"),
    Event("fireworks", False, "explosion", "Normal", "object",
          ("fireworks burst in the sky above {a}", "colourful fireworks light the sky above {a}",
           "fireworks sparkle high above {a}"), "fireworks burst"),
)

EVENT_BY_NAME: dict[str, Event] = {e.name: e for e in EVENTS}
ABNORMAL_EVENTS: tuple[Event, ...] = tuple(e for e in EVENTS if e.abnormal)
NORMAL_EVENTS: tuple[Event, ...] = tuple(e for e in EVENTS if not e.abnormal)
EVENT_OF_CATEGORY: dict[str, str] = {e.category: e.name for e in ABNORMAL_EVENTS}

# Words that carry an event (every phrasing, minus slots and filler). Pre-training captions contain none.
_FILLER = frozenset(
    "a an the is to of on in from with and next beside above up down away into onto high sky bag bench ground "
    "stick cloth street".split()
)
EVENT_WORDS: frozenset[str] = frozenset(
    word
    for event in EVENTS
    for verb in event.verbs
    for word in verb.replace("{a}", " ").replace("{b}", " ").split()
    if word not in _FILLER
)


def counterpart(name: str) -> Event:
    return EVENT_BY_NAME[EVENT_BY_NAME[name].counterpart]
