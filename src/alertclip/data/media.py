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
    frames: np.ndarray  # (len(selected), H, W, 3) uint8, in the order of the sorted unique selection
    selected: np.ndarray  # the frame numbers (0-based, at the target fps) that were found
    n_decoded: int  # frames the file yielded at the target fps
    errors: str  # what ffmpeg complained about (empty when clean)


def decode_frames(path: str | Path, fps: float, width: int, height: int,
                  select: np.ndarray | None = None) -> Decoded:
    """Decode ``path`` at ``fps`` and ``width``x``height``; keep frame numbers in ``select`` (all when None)."""
    wanted = None if select is None else np.unique(np.asarray(select, dtype=np.int64))
    proc = (
        ffmpeg.input(str(path))
        .filter("fps", fps=fps)
        .filter("scale", width, height)
        .output("pipe:", format="rawvideo", pix_fmt="rgb24")
        .global_args("-loglevel", "error", "-nostdin", "-threads", "1")
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )
    frame_bytes = width * height * 3
    kept, kept_idx = [], []
    n = 0
    pos = 0  # position in `wanted`
    try:
        while True:
            buf = proc.stdout.read(frame_bytes)
            if len(buf) < frame_bytes:
                break
            if wanted is None or (pos < len(wanted) and wanted[pos] == n):
                kept.append(np.frombuffer(buf, np.uint8).reshape(height, width, 3))
                kept_idx.append(n)
                pos += 1
            n += 1
    finally:
        proc.stdout.close()
        # ffmpeg prefixes messages with a context pointer ("[mov,mp4 @ 0x55b4...]"): drop it so reasons are
        # reproducible across runs.
        errors = re.sub(r" @ 0x[0-9a-f]+", "", proc.stderr.read().decode(errors="replace").strip())
        code = proc.wait()
    if code != 0 and not errors:
        errors = f"ffmpeg exited with {code}"
    frames = np.stack(kept) if kept else np.zeros((0, height, width, 3), np.uint8)
    return Decoded(frames, np.asarray(kept_idx, np.int64), n, errors)


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
