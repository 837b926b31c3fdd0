"""Planning VAGTA-synth: which videos exist, what happens in each, and when.

A plan is pure data drawn from one seeded generator, so the same params give the same world; rendering and encoding
(``generate.py``) only execute it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import world
from .render import Car, EventInstance, Person, Thing

ROOT = "VAGTA_synth/Videos"  # mirrors UCF's "UCF_Crimes_Videos/UCF_Crimes/Videos"
ANNOTATION_FPS = 25  # VAGTA's frames_25 and keyframe numbers are at 25 fps whatever the video's own rate


@dataclass
class Walker:
    person: Person
    y: float
    x0: float
    speed: float  # normalised width per second, signed


@dataclass
class VideoScript:
    name: str  # file name, e.g. Fighting003_x264.mp4
    split: str  # train | test
    category: str  # an abnormal category, or Normal
    scene: str
    tint: str
    duration: float
    fps: int
    width: int
    height: int
    seed: int
    events: list[EventInstance] = field(default_factory=list)
    walkers: list[Walker] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"{ROOT}/{self.category}/{self.name}"

    @property
    def abnormal(self) -> bool:
        return self.category != "Normal"

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * self.fps))


def _person(rng: np.random.Generator, avoid: set[str] = frozenset()) -> Person:
    colours = [c for c in world.COLOURS if c not in avoid]
    shirt = str(rng.choice(colours))
    return Person(shirt=shirt, pants=str(rng.choice(["black", "blue", "white", "purple"])))


def _place_event(rng: np.random.Generator, name: str, start: float, end: float) -> EventInstance:
    ev = world.EVENT_BY_NAME[name]
    facing = int(rng.choice([-1, 1]))
    x = float(rng.uniform(0.38, 0.62))
    y = float(rng.uniform(0.74, 0.9))
    a = b = None
    extra: dict = {}
    if ev.actors == "two_people":
        a = _person(rng)
        b = _person(rng, avoid={a.shirt})
        extra["bag"] = str(rng.choice(["orange", "purple", "yellow", "green"]))
    elif ev.actors == "person":
        a = _person(rng)
    elif ev.actors == "two_cars":
        a = Car(str(rng.choice(list(world.COLOURS))))
        b = Car(str(rng.choice([c for c in world.COLOURS if c != a.colour])))
    elif ev.actors == "object":
        a = Thing(str(rng.choice(world.OBJECTS)), str(rng.choice(list(world.COLOURS))))
    elif ev.actors == "person_object":
        a = _person(rng)
        b = Thing(str(rng.choice(world.OBJECTS)), str(rng.choice([c for c in world.COLOURS if c != a.shirt])))
    return EventInstance(name=name, start=start, end=end, x=x, y=y, a=a, b=b, facing=facing, extra=extra)


def _spans(rng: np.random.Generator, duration: float, n: int) -> list[tuple[float, float]]:
    """n non-overlapping event spans inside [1, duration-1], in time order: one per equal slot, 3-6 s long when
    the slot allows (shorter in short videos, so every drawn event always fits)."""
    slot = (duration - 2.0) / n
    room = max(slot - 0.5, 0.4)  # keep a 0.5 s gap between neighbouring events
    spans = []
    for i in range(n):
        length = float(rng.uniform(min(3.0, room), min(6.0, room)))
        start = 1.0 + i * slot + float(rng.uniform(0.0, max(room - length, 0.0)))
        spans.append((round(start, 2), round(start + length, 2)))
    return spans


def plan_world(seed: int, n_train: int, n_test: int, min_s: float, max_s: float, width: int, height: int,
               fps: int, odd_fraction: float, abnormal_fraction: float) -> list[VideoScript]:
    rng = np.random.default_rng(seed)
    scripts: list[VideoScript] = []
    counters: dict[str, int] = {}
    n_train_normal = 0
    for split, count in (("train", n_train), ("test", n_test)):
        n_abnormal = max(1, int(round(count * abnormal_fraction)))
        # Categories cycle so every abnormal event appears in both splits even in a small world.
        categories = [world.ABNORMAL_EVENTS[i % len(world.ABNORMAL_EVENTS)].category for i in range(n_abnormal)]
        categories += ["Normal"] * (count - n_abnormal)
        rng.shuffle(categories)
        for category in categories:
            counters[category] = counters.get(category, 0) + 1
            idx = counters[category]
            name = f"Normal_Videos_{idx:03d}_x264.mp4" if category == "Normal" else f"{category}{idx:03d}_x264.mp4"
            odd = rng.random() < odd_fraction
            script = VideoScript(
                name=name, split=split, category=category,
                scene=str(rng.choice(world.SCENES)), tint=str(rng.choice(list(world.COLOURS))),
                duration=round(float(rng.uniform(min_s, max_s)), 2),
                fps=30 if odd else fps,
                width=width + 16 if odd else width, height=height - 4 if odd else height,
                seed=int(rng.integers(2**31)),
            )
            # The first normal video of a split always has two events (two annotated segments), so even the
            # smoke world has the "same caption on every segment" defect to inject.
            first_normal = category == "Normal" and counters[category] == (1 if split == "train" else n_train_normal + 1)
            _fill(script, rng, n_normal_events=2 if first_normal else None)
            scripts.append(script)
        if split == "train":
            n_train_normal = counters.get("Normal", 0)
    return scripts


def _fill(script: VideoScript, rng: np.random.Generator, n_normal_events: int | None = None) -> None:
    if script.abnormal:
        name = world.EVENT_OF_CATEGORY[script.category]
        n_abnormal = 2 if rng.random() < 0.25 else 1
        with_counterpart = rng.random() < 0.5
        names = [name] * n_abnormal + ([world.EVENT_BY_NAME[name].counterpart] if with_counterpart else [])
    else:
        n = n_normal_events or int(rng.integers(1, 3))
        picks = rng.choice(len(world.NORMAL_EVENTS), size=n, replace=False)
        names = [world.NORMAL_EVENTS[int(i)].name for i in picks]
    spans = _spans(rng, script.duration, len(names))
    order = rng.permutation(len(spans))  # which slot each event gets
    placed = sorted((spans[int(k)], n) for k, n in zip(order, names))
    script.events = [_place_event(rng, n, s, e) for (s, e), n in placed]
    for _ in range(int(rng.integers(1, 4))):
        speed = float(rng.uniform(0.06, 0.14)) * float(rng.choice([-1, 1]))
        script.walkers.append(Walker(_person(rng), float(rng.uniform(0.55, 0.7)), float(rng.uniform(0, 1)), speed))
