"""Rendering VAGTA-synth frames with numpy.

All geometry is in normalised image coordinates (x right, y down, both in [0, 1]) so one script renders the same
content at any size. Every draw call returns the normalised box of what it drew, which becomes the region
annotation. Drawing is plain array slicing: a 64x64 frame with a handful of actors costs well under a millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .world import COLOURS

Box = tuple[float, float, float, float]
RGB = tuple[int, int, int]

SKIN: RGB = (225, 180, 140)
GREY: RGB = (128, 128, 128)
DARK: RGB = (60, 60, 60)
GLASS: RGB = (170, 215, 240)
WOOD: RGB = (120, 80, 40)


def union(*boxes: Box | None) -> Box | None:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


class Canvas:
    """An RGB uint8 frame with primitives in normalised coordinates."""

    def __init__(self, background: np.ndarray):
        self.img = background.copy()
        self.h, self.w = self.img.shape[:2]

    def _px(self, x: float, y: float) -> tuple[int, int]:
        return int(round(x * self.w)), int(round(y * self.h))

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour: RGB) -> Box:
        px0, py0 = self._px(min(x0, x1), min(y0, y1))
        px1, py1 = self._px(max(x0, x1), max(y0, y1))
        px1, py1 = max(px1, px0 + 1), max(py1, py0 + 1)  # never vanish below one pixel
        self.img[max(py0, 0):max(py1, 0), max(px0, 0):max(px1, 0)] = colour
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def disc(self, cx: float, cy: float, r: float, colour: RGB, alpha: float = 1.0) -> Box:
        """A disc of radius r (in units of image height, so discs stay round at any aspect)."""
        rp = max(r * self.h, 0.6)
        cxp, cyp = cx * self.w, cy * self.h
        x0, x1 = max(int(math.floor(cxp - rp)), 0), min(int(math.ceil(cxp + rp)) + 1, self.w)
        y0, y1 = max(int(math.floor(cyp - rp)), 0), min(int(math.ceil(cyp + rp)) + 1, self.h)
        if x0 < x1 and y0 < y1:
            yy, xx = np.ogrid[y0:y1, x0:x1]
            mask = (xx + 0.5 - cxp) ** 2 + (yy + 0.5 - cyp) ** 2 <= rp * rp
            patch = self.img[y0:y1, x0:x1]
            if alpha >= 1.0:
                patch[mask] = colour
            else:
                patch[mask] = (patch[mask] * (1 - alpha) + np.asarray(colour) * alpha).astype(np.uint8)
        rx = r * self.h / self.w
        return (cx - rx, cy - r, cx + rx, cy + r)

    def line(self, x0: float, y0: float, x1: float, y1: float, colour: RGB, width: float = 0.02) -> Box:
        steps = max(int(max(abs(x1 - x0) * self.w, abs(y1 - y0) * self.h)) + 1, 2)
        for t in np.linspace(0.0, 1.0, steps):
            x, y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
            self.rect(x - width / 2, y - width / 2, x + width / 2, y + width / 2, colour)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def shade(self, y0: float, y1: float, colour: RGB, alpha: float) -> None:
        a, b = int(y0 * self.h), int(y1 * self.h)
        band = self.img[a:b].astype(np.float32)
        self.img[a:b] = (band * (1 - alpha) + np.asarray(colour, np.float32) * alpha).astype(np.uint8)


# ---------------------------------------------------------------- backgrounds

def background(scene: str, tint: RGB, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A static backdrop for a scene; ``tint`` colours its main structure (building, wall, shelves)."""
    c = Canvas(np.zeros((height, width, 3), np.uint8))
    sky: RGB = (150, 200, 235)
    if scene == "street":
        c.rect(0, 0, 1, 0.35, sky)
        c.rect(0.05, 0.08, 0.45, 0.4, tint)
        c.rect(0.55, 0.15, 0.95, 0.4, tuple(int(v * 0.7) for v in tint))
        c.rect(0, 0.4, 1, 0.58, (170, 170, 165))
        c.rect(0, 0.58, 1, 1, (75, 75, 80))
        for x in np.arange(0.05, 1, 0.2):
            c.rect(x, 0.78, x + 0.08, 0.8, (230, 230, 230))
    elif scene == "car yard":
        c.rect(0, 0, 1, 0.3, tint)
        c.rect(0, 0.3, 1, 1, (95, 95, 100))
        for x in np.arange(0.1, 1, 0.25):
            c.rect(x, 0.55, x + 0.015, 0.95, (230, 230, 230))
    elif scene == "garden":
        c.rect(0, 0, 1, 0.35, sky)
        c.rect(0, 0.35, 1, 1, (70, 150, 60))
        for x in rng.uniform(0.05, 0.95, 3):
            c.rect(x - 0.015, 0.2, x + 0.015, 0.4, WOOD)
            c.disc(x, 0.18, 0.09, (30, 100, 40))
        c.disc(0.85, 0.08, 0.05, tint)  # a coloured flower bed / sign
    elif scene == "plaza":
        c.rect(0, 0, 1, 0.4, tint)
        for x in np.arange(0.08, 1, 0.18):
            c.rect(x, 0.1, x + 0.08, 0.22, GLASS)
        c.rect(0, 0.4, 1, 1, (205, 190, 160))
        for y in np.arange(0.45, 1, 0.12):
            c.rect(0, y, 1, y + 0.008, (180, 165, 135))
    elif scene == "platform":
        c.rect(0, 0, 1, 0.4, tint)
        c.rect(0, 0.4, 1, 0.88, (150, 150, 150))
        c.rect(0, 0.86, 1, 0.88, (230, 200, 30))
        c.rect(0, 0.88, 1, 1, (45, 40, 35))
    elif scene == "shop":
        c.rect(0, 0, 1, 0.45, (230, 220, 200))
        for y in (0.12, 0.3):
            c.rect(0.05, y, 0.95, y + 0.03, WOOD)
            for x in np.arange(0.08, 0.92, 0.07):
                c.rect(x, y - 0.06, x + 0.04, y, tint)
        c.rect(0, 0.45, 1, 1, (190, 200, 205))
    else:
        raise ValueError(f"unknown scene {scene!r}")
    return c.img


# ---------------------------------------------------------------- actors

@dataclass
class Person:
    shirt: str
    pants: str

    def draw(self, c: Canvas, x: float, y: float, h: float = 0.3, pose: str = "stand", phase: float = 0.0,
             facing: int = 1, arm: str = "down") -> Box:
        """Draw a person with feet at (x, y), height h. Poses: stand, walk, run, lie, sit."""
        shirt, pants = COLOURS[self.shirt], COLOURS[self.pants]
        if pose == "lie":
            c.rect(x - 0.55 * h, y - 0.1 * h, x - 0.2 * h, y, pants)
            c.rect(x - 0.2 * h, y - 0.14 * h, x + 0.2 * h, y, shirt)
            c.disc(x + 0.28 * h, y - 0.07 * h, 0.08 * h, SKIN)
            return (x - 0.55 * h, y - 0.16 * h, x + 0.38 * h, y)
        if pose == "sit":
            c.rect(x - 0.12 * h, y - 0.72 * h, x + 0.12 * h, y - 0.35 * h, shirt)
            c.rect(x - 0.12 * h, y - 0.42 * h, x + 0.28 * h * facing, y - 0.32 * h, pants)
            c.rect(x + 0.2 * h * facing, y - 0.35 * h, x + 0.28 * h * facing, y, pants)
            c.disc(x, y - 0.82 * h, 0.1 * h, SKIN)
            return (min(x - 0.12 * h, x + 0.28 * h * facing), y - 0.92 * h, max(x + 0.12 * h, x + 0.28 * h * facing), y)
        lean = 0.12 * h * facing if pose == "run" else 0.0
        stride = {"walk": 0.08, "run": 0.14}.get(pose, 0.0) * h * math.sin(phase)
        c.rect(x - 0.08 * h + stride, y - 0.45 * h, x - 0.01 * h + stride, y, pants)
        c.rect(x + 0.01 * h - stride, y - 0.45 * h, x + 0.08 * h - stride, y, pants)
        c.rect(x - 0.13 * h + lean, y - 0.82 * h, x + 0.13 * h + lean, y - 0.42 * h, shirt)
        c.disc(x + lean, y - 0.91 * h, 0.1 * h, SKIN)
        sx, sy = x + lean, y - 0.75 * h
        reach = {"down": None, "forward": 0.3, "punch": 0.45, "up": None, "hold": 0.22}.get(arm)
        if arm == "up":
            c.line(sx - 0.12 * h, sy, sx - 0.2 * h, sy - 0.35 * h, shirt, 0.05 * h)
            c.line(sx + 0.12 * h, sy, sx + 0.2 * h, sy - 0.35 * h, shirt, 0.05 * h)
        elif reach is not None:
            c.line(sx, sy + 0.05 * h, sx + reach * h * facing, sy + 0.05 * h, shirt, 0.06 * h)
            c.disc(sx + reach * h * facing, sy + 0.05 * h, 0.04 * h, SKIN)
        return (x - 0.16 * h + min(lean, 0), y - 1.01 * h, x + 0.16 * h + max(lean, 0), y)


def hand_point(x: float, y: float, h: float, facing: int, reach: float = 0.22) -> tuple[float, float]:
    return x + reach * h * facing, y - 0.7 * h


@dataclass
class Car:
    colour: str

    def draw(self, c: Canvas, x: float, y: float, length: float = 0.3, damaged: bool = False) -> Box:
        body = COLOURS[self.colour]
        if damaged:
            body = tuple(int(v * 0.45) for v in body)
        hgt = 0.42 * length * c.w / c.h
        c.rect(x - length / 2, y - 0.6 * hgt, x + length / 2, y - 0.15 * hgt, body)
        c.rect(x - 0.3 * length, y - hgt, x + 0.25 * length, y - 0.58 * hgt, body)
        c.rect(x - 0.25 * length, y - 0.92 * hgt, x + 0.2 * length, y - 0.62 * hgt, DARK if damaged else GLASS)
        for wx in (x - 0.3 * length, x + 0.3 * length):
            c.disc(wx, y - 0.15 * hgt, 0.15 * hgt, (20, 20, 20))
        return (x - length / 2, y - hgt, x + length / 2, y)


@dataclass
class Thing:
    """A static object: a bin, a kiosk, or a car (delegated)."""

    kind: str
    colour: str

    def draw(self, c: Canvas, x: float, y: float, damaged: bool = False) -> Box:
        col = COLOURS[self.colour]
        if damaged:
            col = tuple(int(v * 0.4) for v in col)
        if self.kind == "car":
            return Car(self.colour).draw(c, x, y, damaged=damaged)
        if self.kind == "bin":
            c.rect(x - 0.05, y - 0.16, x + 0.05, y, col)
            c.rect(x - 0.06, y - 0.18, x + 0.06, y - 0.15, DARK)
            return (x - 0.06, y - 0.18, x + 0.06, y)
        if self.kind == "kiosk":
            c.rect(x - 0.1, y - 0.28, x + 0.1, y, col)
            c.rect(x - 0.08, y - 0.24, x + 0.08, y - 0.14, DARK if damaged else GLASS)
            c.rect(x - 0.12, y - 0.32, x + 0.12, y - 0.27, (200, 200, 200))
            return (x - 0.12, y - 0.32, x + 0.12, y)
        raise ValueError(f"unknown object kind {self.kind!r}")


def bench(c: Canvas, x: float, y: float, h: float = 0.3) -> Box:
    c.rect(x - 0.2 * h, y - 0.4 * h, x + 0.45 * h, y - 0.32 * h, WOOD)
    c.rect(x - 0.15 * h, y - 0.32 * h, x - 0.1 * h, y, WOOD)
    c.rect(x + 0.35 * h, y - 0.32 * h, x + 0.4 * h, y, WOOD)
    return (x - 0.2 * h, y - 0.4 * h, x + 0.45 * h, y)


def flames(c: Canvas, box: Box, strength: float, noise: np.random.Generator) -> Box:
    """Flickering fire on the top of an object plus smoke: the single-frame evidence of arson."""
    x0, y0, x1, y1 = box
    n = 3 + int(6 * strength)
    for _ in range(n):
        fx = noise.uniform(x0, x1)
        fy = y0 + noise.uniform(-0.08, 0.05) * (0.5 + strength)
        c.disc(fx, fy, noise.uniform(0.02, 0.05) * (0.6 + strength), (240, noise.integers(60, 200), 20))
    for k in range(2 + int(3 * strength)):
        c.disc(noise.uniform(x0, x1), y0 - 0.08 - 0.06 * k, 0.04 + 0.01 * k, (110, 110, 110), alpha=0.7)
    return (x0, max(y0 - 0.3 * strength - 0.1, 0.0), x1, y1)


def burst(c: Canvas, cx: float, cy: float, radius: float, colours: list[RGB], noise: np.random.Generator,
          n: int = 10) -> Box:
    for k in range(n):
        ang = 2 * math.pi * k / n + noise.uniform(-0.1, 0.1)
        c.disc(cx + radius * math.cos(ang) * c.h / c.w, cy + radius * math.sin(ang), 0.018, colours[k % len(colours)])
    return (cx - radius, cy - radius, cx + radius, cy + radius)


# ---------------------------------------------------------------- events

@dataclass
class EventInstance:
    """One event placed in a video: where, who, and when (seconds)."""

    name: str
    start: float
    end: float
    x: float
    y: float
    a: object  # Person / Car / Thing, by event
    b: object | None
    facing: int = 1
    extra: dict = field(default_factory=dict)
    approach: float = 0.0  # seconds drawn before ``start`` (walking in, driving in): not annotated, no cue yet


def _ramp(p: float, a: float, b: float) -> float:
    return min(max((p - a) / (b - a), 0.0), 1.0)


def draw_event(c: Canvas, ev: EventInstance, t: float, noise: np.random.Generator) -> Box | None:
    """Draw ``ev`` at time t (seconds); return the region box, or None outside the event.

    ``p`` runs over the whole drawing window [start - approach, end): the approach ends exactly when the cue state
    (lying, sitting, crashed, bag taken, blast) begins, so the annotated span [start, end) shows the cue throughout.
    """
    if not ev.start - ev.approach <= t < ev.end:
        return None
    p = (t - ev.start + ev.approach) / (ev.end - ev.start + ev.approach)
    x, y, f = ev.x, ev.y, ev.facing
    n = ev.name
    if n in ("fighting", "talking"):
        gap = 0.09 if n == "fighting" else 0.13
        jit = noise.uniform(-0.012, 0.012) if n == "fighting" else 0.0
        swing = int(t * 4) % 2
        if n == "fighting":
            ba = ev.a.draw(c, x - gap + jit, y, arm="punch" if swing else "up", facing=1)
            bb = ev.b.draw(c, x + gap - jit, y, arm="up" if swing else "punch", facing=-1)
            star = c.disc(x, y - 0.22, 0.035, (250, 220, 40))
            c.disc(x, y - 0.22, 0.018, (230, 30, 30))
            return union(ba, bb, star)
        ba = ev.a.draw(c, x - gap, y, arm="forward" if swing else "down", facing=1)
        bb = ev.b.draw(c, x + gap, y, arm="down" if swing else "forward", facing=-1)
        bubble = c.disc(x - gap + 0.1 if swing else x + gap - 0.1, y - 0.38, 0.04, (250, 250, 250))
        return union(ba, bb, bubble)
    if n in ("collapsing", "sitting_down"):
        walk_x = x - 0.25 * f * (1 - _ramp(p, 0.0, 0.3))
        settled = p >= 0.35
        seat = bench(c, x - 0.05, y) if n == "sitting_down" else None
        if not settled:
            box = ev.a.draw(c, walk_x, y, pose="walk", phase=t * 8, facing=f)
        elif n == "collapsing":
            box = ev.a.draw(c, x, y, pose="lie")
            c.disc(x - 0.02, y + 0.01, 0.025, (120, 20, 20))  # a dark stain under the fallen person
        else:
            box = ev.a.draw(c, x, y, pose="sit", facing=f)
        return union(box, seat) if settled else box
    if n in ("car_crash", "parking"):
        length = 0.3
        parked = ev.b.draw(c, x + 0.18 * f, y, length)
        stop = x - 0.18 * f + (0.08 * f if n == "car_crash" else -0.02 * f)
        cx = stop - 0.6 * f * (1 - _ramp(p, 0.0, 0.45))
        hit = n == "car_crash" and p >= 0.45
        box = ev.a.draw(c, cx, y + (0.02 if hit else 0.0), length, damaged=hit)
        if hit:
            ev.b.draw(c, x + 0.18 * f, y, length, damaged=True)
            for _ in range(4):
                c.disc(x + noise.uniform(-0.05, 0.05), y - noise.uniform(0.05, 0.2), 0.02, (250, 160, 30))
            c.disc(x, y - 0.3, 0.06, (110, 110, 110), alpha=0.7)
        return union(box, parked)
    if n in ("arson", "lamp_glow", "explosion", "fireworks"):
        if n == "lamp_glow":
            pole = c.rect(x + 0.16, y - 0.45, x + 0.18, y, DARK)
            glow = c.disc(x + 0.17, y - 0.47, 0.07 + 0.005 * math.sin(t * 3), (250, 230, 120), alpha=0.8)
            c.disc(x + 0.17, y - 0.47, 0.025, (255, 255, 220))
            return union(ev.a.draw(c, x, y), pole, glow)
        if n == "fireworks":
            c.shade(0.0, 0.4, (10, 10, 50), 0.6)
            obj = ev.a.draw(c, x, y)
            phase = (t * 1.5) % 1.0
            sky = burst(c, x + 0.1 * math.sin(int(t * 1.5)), 0.15, 0.04 + 0.08 * phase,
                        [(255, 60, 200), (60, 255, 120), (80, 180, 255)], noise)
            return union(obj, sky)
        if n == "arson":
            obj = ev.a.draw(c, x, y, damaged=p > 0.6)
            return union(obj, flames(c, obj, _ramp(p, 0.0, 0.5), noise))
        blast_p = _ramp(p, 0.1, 0.5)
        obj = ev.a.draw(c, x, y, damaged=p >= 0.1)
        if p < 0.1:
            return obj
        r = 0.05 + 0.15 * blast_p
        ball = c.disc(x, y - 0.1, r, (245, 130, 30))
        c.disc(x, y - 0.1, r * 0.6, (255, 245, 200))
        for _ in range(6):
            ang = noise.uniform(0, 2 * math.pi)
            c.disc(x + 1.4 * r * math.cos(ang), y - 0.1 + 1.4 * r * math.sin(ang), 0.015, (30, 30, 30))
        return union(obj, ball)
    if n in ("snatching", "handing_over"):
        # a = the taker, b = the holder (captions: "{a} snatches a bag from {b}")
        holder_x = x + 0.12 * f
        approach = _ramp(p, 0.0, 0.35)
        taker_x = x - 0.35 * f + (0.3 * f) * approach
        exchanged = p >= 0.45
        if n == "snatching" and exchanged:
            run = _ramp(p, 0.45, 1.0)
            taker_x = x - 0.05 * f - 0.5 * f * run
            bt = ev.a.draw(c, taker_x, y, pose="run", phase=t * 14, facing=-f, arm="hold")
            hx, hy = hand_point(taker_x, y, 0.3, -f)
            c.rect(hx - 0.03, hy, hx + 0.03, hy + 0.06, COLOURS[ev.extra["bag"]])
            bh = ev.b.draw(c, holder_x, y, arm="up", facing=-f)
            return union(bt, bh)
        bt = ev.a.draw(c, taker_x, y, pose="walk" if approach < 1 else "stand", phase=t * 8, facing=f,
                       arm="hold" if exchanged or approach >= 1 else "down")
        bh = ev.b.draw(c, holder_x, y, facing=-f, arm="hold")
        bag_x = (taker_x + holder_x) / 2 if approach >= 1 else hand_point(holder_x, y, 0.3, -f)[0]
        c.rect(bag_x - 0.03, y - 0.21, bag_x + 0.03, y - 0.15, COLOURS[ev.extra["bag"]])
        return union(bt, bh)
    if n in ("vandalism", "cleaning"):
        obj = ev.b.draw(c, x + 0.1 * f, y, damaged=(n == "vandalism" and p > 0.3))
        person = ev.a.draw(c, x - 0.12 * f, y, facing=f, arm="forward")
        hx, hy = hand_point(x - 0.12 * f, y, 0.3, f, 0.3)
        if n == "vandalism":
            up = int(t * 5) % 2
            tool = c.line(hx, hy, hx + 0.08 * f, hy - (0.15 if up else 0.02), WOOD, 0.02)
            if p > 0.3:
                for _ in range(5):
                    c.disc(noise.uniform(obj[0], obj[2]), noise.uniform(obj[1], obj[3]), 0.012, (220, 240, 255))
                c.line(obj[0] + 0.02, obj[1] + 0.05, obj[2] - 0.02, obj[3] - 0.05, (230, 40, 200), 0.015)
            return union(obj, person, tool)
        wipe = 0.04 * math.sin(t * 6)
        cloth = c.rect(hx + wipe, hy - 0.02, hx + wipe + 0.04, hy + 0.03, (250, 250, 250))
        c.rect(x - 0.02 * f, y - 0.06, x + 0.03 * f, y, (40, 120, 230))  # a bucket
        return union(obj, person, cloth)
    raise ValueError(f"no renderer for event {n!r}")
