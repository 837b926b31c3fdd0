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


# How long an event's actors take to reach the state that shows it (walking in before collapsing or sitting, the car
# driving in before crashing or parking, the approach before a snatch or a hand-over), as a share of the event's
# drawing window. The annotated span starts when that state is reached, so every annotated frame carries the cue;
# the approach is drawn before the span. Counterparts share the value, so the timing never tells the label.
APPROACH_SHARE = {"collapsing": 0.35, "sitting_down": 0.35, "car_crash": 0.45, "parking": 0.45, "snatching": 0.45,
                  "handing_over": 0.45, "explosion": 0.1, "fireworks": 0.1}
EVENT_SLOT_S = 4.0  # seconds a video needs per event (approach, annotated span, gap); two events at least
WALKERS = (1, 2, 3)


@dataclass(frozen=True)
class Nuisance:
    """Everything about a video that is not its events. Each split draws one list of these and gives the same list to
    its abnormal and to its normal videos, so no nuisance factor (scene, wall colour, walkers, length, event count,
    odd encoding) carries the label in any split."""

    scene: str
    tint: str
    duration: float
    n_events: int
    n_walkers: int
    odd: bool


def draw_nuisances(rng: np.random.Generator, n: int, min_s: float, max_s: float, odd_fraction: float) -> list[Nuisance]:
    """n nuisance tuples with scenes cycling through a shuffled order (each scene within one of every other)."""
    scenes = [world.SCENES[int(i)] for i in rng.permutation(len(world.SCENES))]
    out = []
    for i in range(n):
        duration = round(float(rng.uniform(min_s, max_s)), 2)
        n_events = max(2, min(3, int((duration - 1.0) // EVENT_SLOT_S)))
        out.append(Nuisance(scene=scenes[i % len(scenes)], tint=str(rng.choice(list(world.COLOURS))),
                            duration=duration, n_events=n_events, n_walkers=int(rng.choice(WALKERS)),
                            odd=bool(rng.random() < odd_fraction)))
    return out


def _place_event(rng: np.random.Generator, name: str, start: float, end: float, approach: float) -> EventInstance:
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
    return EventInstance(name=name, start=start, end=end, x=x, y=y, a=a, b=b, facing=facing, extra=extra,
                         approach=approach)


def _spans(rng: np.random.Generator, duration: float, names: list[str]) -> list[tuple[float, float, float]]:
    """One (start, end, approach) per event, in time order, one per equal slot of [0.5, duration - 0.5]: the
    approach is drawn before ``start``, the annotated span [start, end) shows the event's cue throughout."""
    n = len(names)
    slot = (duration - 1.0) / n
    window = slot - 0.4  # keep a gap between neighbouring events
    spans = []
    for i, name in enumerate(names):
        share = APPROACH_SHARE.get(name, 0.0)
        length = window * float(rng.uniform(0.42, 0.55))  # the annotated part
        approach = length * share / (1.0 - share) + (0.04 if share else 0.0)  # + one frame: rounding
        slack = max(window - length - approach, 0.0)
        start = 0.5 + i * slot + approach + float(rng.uniform(0.0, slack))
        spans.append((round(start, 2), round(start + length, 2), approach))
    return spans


def plan_world(seed: int, n_train: int, n_test: int, min_s: float, max_s: float, width: int, height: int,
               fps: int, odd_fraction: float, abnormal_fraction: float) -> list[VideoScript]:
    rng = np.random.default_rng(seed)
    scripts: list[VideoScript] = []
    counters: dict[str, int] = {}
    for split, count in (("train", n_train), ("test", n_test)):
        n_abnormal = max(1, int(round(count * abnormal_fraction)))
        n_normal = count - n_abnormal
        # Categories cycle so every abnormal event appears in both splits even in a small world.
        abnormal = [world.ABNORMAL_EVENTS[i % len(world.ABNORMAL_EVENTS)].category for i in range(n_abnormal)]
        abnormal = [abnormal[int(i)] for i in rng.permutation(n_abnormal)]
        shared = draw_nuisances(rng, max(n_abnormal, n_normal), min_s, max_s, odd_fraction)
        videos = [(c, shared[i]) for i, c in enumerate(abnormal)] + [("Normal", shared[i]) for i in range(n_normal)]
        for k in rng.permutation(len(videos)):
            category, nz = videos[int(k)]
            counters[category] = counters.get(category, 0) + 1
            idx = counters[category]
            name = f"Normal_Videos_{idx:03d}_x264.mp4" if category == "Normal" else f"{category}{idx:03d}_x264.mp4"
            script = VideoScript(
                name=name, split=split, category=category, scene=nz.scene, tint=nz.tint, duration=nz.duration,
                fps=30 if nz.odd else fps, width=width + 16 if nz.odd else width,
                height=height - 4 if nz.odd else height, seed=int(rng.integers(2**31)),
            )
            _fill(script, rng, nz)
            scripts.append(script)
    return scripts


def _fill(script: VideoScript, rng: np.random.Generator, nz: Nuisance) -> None:
    """Abnormal videos: n - 1 abnormal events of their category and its normal look-alike (at least one of each);
    normal videos: n normal events of different kinds. n comes from the shared nuisance tuple."""
    n = nz.n_events
    if script.abnormal:
        name = world.EVENT_OF_CATEGORY[script.category]
        names = [name] * (n - 1) + [world.EVENT_BY_NAME[name].counterpart]
    else:
        picks = rng.choice(len(world.NORMAL_EVENTS), size=n, replace=False)
        names = [world.NORMAL_EVENTS[int(i)].name for i in picks]
    names = [names[int(i)] for i in rng.permutation(len(names))]  # which slot each event gets
    script.events = [_place_event(rng, nm, s, e, a) for (s, e, a), nm in zip(_spans(rng, script.duration, names), names)]
    for _ in range(nz.n_walkers):
        speed = float(rng.uniform(0.06, 0.14)) * float(rng.choice([-1, 1]))
        script.walkers.append(Walker(_person(rng), float(rng.uniform(0.55, 0.7)), float(rng.uniform(0, 1)), speed))
