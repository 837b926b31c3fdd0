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
    info: MediaInfo | None = None  # the input's facts, read from the same ffmpeg run (None if it printed none)


_DURATION = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_VIDEO = re.compile(r"Stream #0:\d+.*?: Video: (\w+).*?, (\d+)x(\d+)[ ,].*?([\d.]+) fps")
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


def decode_frames(path: str | Path, fps: float, width: int, height: int,
                  select: np.ndarray | None = None) -> Decoded:
    """Decode ``path`` at ``fps`` and ``width``x``height``; keep frame numbers in ``select`` (all when None)."""
    wanted = None if select is None else np.unique(np.asarray(select, dtype=np.int64))
    proc = (
        ffmpeg.input(str(path))
        .filter("fps", fps=fps)
        .filter("scale", width, height)
        .output("pipe:", format="rawvideo", pix_fmt="rgb24")
        # level+info tags each line "[info]"/"[error]": the banner gives the stream facts, the rest the errors.
        .global_args("-hide_banner", "-nostats", "-loglevel", "level+info", "-nostdin", "-threads", "1")
        .run_async(pipe_stdout=True, pipe_stderr=True)
    )
    frame_bytes = width * height * 3
    kept: list[np.ndarray] = []
    n = 0
    try:
        while True:
            buf = proc.stdout.read(_CHUNK_FRAMES * frame_bytes)
            count = len(buf) // frame_bytes
            if count:
                chunk = np.frombuffer(buf, np.uint8, count * frame_bytes).reshape(count, height, width, 3)
                if wanted is None:
                    kept.append(chunk)
                else:
                    local = wanted[(wanted >= n) & (wanted < n + count)] - n
                    if len(local):
                        kept.append(chunk[local])
                n += count
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
    frames = np.concatenate(kept) if kept else np.zeros((0, height, width, 3), np.uint8)
    selected = np.arange(n) if wanted is None else wanted[wanted < n]
    return Decoded(frames, selected.astype(np.int64), n, errors, _info_from_log(str(path), log))


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
