"""Probing and decoding video files with ffmpeg (through ffmpeg-python).

Decoding resamples to a fixed fps and size in one ffmpeg process per file (``fps`` then ``scale`` filters) and
streams raw RGB frames over a pipe, keeping only the frame numbers asked for, so memory stays at the selection.
Bad media never raises out of :func:`probe`/:func:`decode_frames`: the result carries a status and a reason.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import ffmpeg
import numpy as np

OK = "ok"


@dataclass
class MediaInfo:
    path: str
    status: str  # ok | missing | zero_length | unreadable | no_video | truncated
    reason: str = ""
    fps: float = 0.0
    width: int = 0
    height: int = 0
    duration_s: float = 0.0
    codec: str = ""

    def as_row(self) -> dict:
        return asdict(self)


def probe(path: str | Path) -> MediaInfo:
    path = Path(path)
    if not path.exists():
        return MediaInfo(str(path), "missing", "file not found")
    if path.stat().st_size == 0:
        return MediaInfo(str(path), "zero_length", "file is empty (0 bytes)")
    try:
        meta = ffmpeg.probe(str(path))
    except ffmpeg.Error as err:
        text = re.sub(r" @ 0x[0-9a-f]+", "", err.stderr.decode(errors="replace")) if err.stderr else ""
        tail = text.strip().splitlines()[-1:]
        return MediaInfo(str(path), "unreadable", "ffprobe: " + (tail[0] if tail else "failed"))
    video = [s for s in meta.get("streams", []) if s.get("codec_type") == "video"]
    if not video:
        return MediaInfo(str(path), "no_video", "no video stream")
    v = video[0]
    num, _, den = v.get("avg_frame_rate", "0/1").partition("/")
    fps = float(num) / float(den or 1) if float(den or 1) else 0.0
    duration = float(meta.get("format", {}).get("duration") or v.get("duration") or 0.0)
    return MediaInfo(str(path), OK, "", fps, int(v.get("width", 0)), int(v.get("height", 0)), duration,
                     v.get("codec_name", ""))


@dataclass
class Decoded:
    frames: np.ndarray  # (len(selected), H, W, 3) uint8, in increasing frame order
    selected: np.ndarray  # their frame numbers (0-based, at the target fps)
    n_decoded: int  # frames the file yielded at the target fps
    errors: str  # what ffmpeg complained about (empty when clean)
    info: MediaInfo | None = None  # the input's facts, read from the same ffmpeg run (None if it printed none)


@dataclass(frozen=True)
class Selection:
    """Which frames (0-based, at the target fps) to keep: ``n % every in offsets``, plus ``frames`` explicitly.

    Selection happens inside ffmpeg (``select`` filter) so unwanted frames are never scaled, converted to RGB
    or piped: decoding stays close to a plain ``ffmpeg -f null`` decode of the file.
    """

    every: int = 0
    offsets: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()

    def expression(self) -> str:
        terms = [f"not(mod(n-{o},{self.every}))" for o in self.offsets] if self.every else []
        terms += [f"eq(n,{f})" for f in sorted(set(self.frames))]
        return "+".join(terms) or "0"

    def numbers(self, n_total: int) -> np.ndarray:
        periodic = [np.arange(o, n_total, self.every) for o in self.offsets] if self.every else []
        explicit = np.asarray([f for f in self.frames if 0 <= f < n_total], np.int64)
        return np.unique(np.concatenate([*periodic, explicit]).astype(np.int64))


_DURATION = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_VIDEO = re.compile(r"Stream #0:\d+.*?: Video: (\w+).*?, (\d+)x(\d+)[ ,].*?([\d.]+) fps")
_COUNTED = re.compile(r"Parsed_fps_0.*?\d+ frames in, (\d+) frames out")
_CHUNK_FRAMES = 256  # frames per pipe read: few syscalls, bounded memory at any frame size


def _info_from_log(path: str, lines: list[str]) -> MediaInfo | None:
    """The facts ffprobe would give, parsed from ffmpeg's own input banner (saves a process per file)."""
    text = "\n".join(lines)
    video, duration = _VIDEO.search(text), _DURATION.search(text)
    if not video:
        return None
    seconds = 0.0
    if duration:
        h, m, sec = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(sec)
    codec, w, h_px, fps = video.groups()
    return MediaInfo(path, OK, "", float(fps), int(w), int(h_px), seconds, codec)


def _command(path: str | Path, fps: float, width: int, height: int, select: Selection | None):
    # threads=1 as an input option: one decoder thread per file (files run in parallel instead).
    stream = ffmpeg.input(str(path), threads=1).video.filter("fps", fps=fps)
    if select is not None:
        stream = stream.filter("select", select.expression())
    out = ffmpeg.output(stream.filter("scale", width, height), "pipe:", format="rawvideo", pix_fmt="rgb24",
                        fps_mode="passthrough")
    # At verbose level the fps filter reports how many frames it produced (the file's length at the target fps,
    # selection or not) and level+ tags each line "[info]"/"[error]", so one run gives frames, facts and errors.
    return out.global_args("-hide_banner", "-nostats", "-loglevel", "level+verbose", "-nostdin")


def decode_frames(path: str | Path, fps: float, width: int, height: int,
                  select: Selection | None = None) -> Decoded:
    """Decode ``path`` at ``fps`` and ``width``x``height``; keep the frames of ``select`` (all when None)."""
    proc = _command(path, fps, width, height, select).run_async(pipe_stdout=True, pipe_stderr=True)
    frame_bytes = width * height * 3
    chunks: list[np.ndarray] = []
    try:
        while True:
            buf = proc.stdout.read(_CHUNK_FRAMES * frame_bytes)
            count = len(buf) // frame_bytes
            if count:
                chunks.append(np.frombuffer(buf, np.uint8, count * frame_bytes).reshape(count, height, width, 3))
            if len(buf) < _CHUNK_FRAMES * frame_bytes:
                break
    finally:
        proc.stdout.close()
        log = proc.stderr.read().decode(errors="replace").splitlines()
        code = proc.wait()
    # ffmpeg prefixes messages with a context pointer ("[mov,mp4 @ 0x55b4...]"): drop it so reasons are
    # reproducible across runs.
    errors = "\n".join(re.sub(r" @ 0x[0-9a-f]+", "", line).replace("[error] ", "").replace("[fatal] ", "")
                       for line in log if "[error]" in line or "[fatal]" in line)
    if code != 0 and not errors:
        errors = f"ffmpeg exited with {code}"
    frames = np.concatenate(chunks) if chunks else np.zeros((0, height, width, 3), np.uint8)
    if select is None:
        n_total, numbers = len(frames), np.arange(len(frames), dtype=np.int64)
    else:
        counted = _COUNTED.findall("\n".join(log))  # the last report is the real graph's (ffmpeg may probe first)
        n_total = int(counted[-1]) if counted else 0
        numbers = select.numbers(n_total)
        if len(numbers) != len(frames):  # never expected; refuse to guess which frame is which
            errors = (errors + "\n" if errors else "") + (
                f"selection mismatch: {len(frames)} frames piped, {len(numbers)} expected of {n_total}")
            n_total, numbers, frames = 0, numbers[:0], frames[:0]
    return Decoded(frames, numbers, n_total, errors, _info_from_log(str(path), log))


def check_complete(info: MediaInfo, decoded: Decoded, fps: float, tolerance: float = 0.9) -> MediaInfo:
    """Flag a file that decodes to clearly fewer frames than its container promises (a truncated download)."""
    expected = info.duration_s * fps
    if decoded.n_decoded == 0:
        return MediaInfo(**{**info.as_row(), "status": "unreadable",
                            "reason": decoded.errors.splitlines()[-1] if decoded.errors else "no frames decoded"})
    if expected > 0 and decoded.n_decoded < tolerance * expected:
        detail = decoded.errors.splitlines()[-1] if decoded.errors else ""
        return MediaInfo(**{**info.as_row(), "status": "truncated",
                            "reason": f"decoded {decoded.n_decoded} of ~{expected:.0f} frames {detail}".strip()})
    return info
