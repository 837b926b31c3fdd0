"""Optional LLM backend: an OpenAI-compatible chat-completions endpoint, every answer cached on disk.

The cache key is sha256 of (model, prompt, temperature), so a rerun is exact and works offline; an uncached prompt
with the endpoint down raises ``LLMUnavailableError`` naming the URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import requests

from ..io import atomic_open
from ..params import LLMParams


class LLMUnavailableError(RuntimeError):
    """The endpoint could not answer an uncached prompt."""


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")

SYSTEM = ("You write hard negatives for video-anomaly captions. Keep the scene, the actors, the objects and as many "
          "words as possible; change only the event so that an abnormal event becomes a normal one, or a normal one "
          "becomes abnormal. Answer with one caption per line and nothing else.")


def prompt_for(caption: str, abnormal: bool, n: int) -> str:
    direction = "normal (harmless)" if abnormal else "abnormal (a crime, accident, fight, fire or fall)"
    return (f"Caption: {caption}\nThis caption describes an {'abnormal' if abnormal else 'normal'} event. "
            f"Write {n} different captions that describe a {direction} event instead.")


def parse_lines(content: str) -> list[str]:
    lines = (_BULLET.sub("", line).strip().strip('"') for line in content.splitlines())
    return [line for line in lines if line]


class LLMClient:
    def __init__(self, params: LLMParams, session: requests.Session | None = None) -> None:
        self.p = params
        self.cache_dir = Path(params.cache_dir)
        self.session = session or requests.Session()
        self.requests_made = 0
        self.cache_hits = 0

    @property
    def url(self) -> str:
        return self.p.base_url.rstrip("/") + "/chat/completions"

    def _key(self, prompt: str) -> str:
        blob = json.dumps([self.p.model, prompt, self.p.temperature], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def complete(self, prompt: str) -> str:
        """The message content for ``prompt`` (from the cache when present)."""
        path = self.cache_dir / f"{self._key(prompt)}.json"
        if path.exists():
            self.cache_hits += 1
            return json.loads(path.read_text(encoding="utf-8"))["content"]
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.p.api_key_env) if self.p.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = {"model": self.p.model, "temperature": self.p.temperature,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]}
        try:
            self.requests_made += 1
            resp = self.session.post(self.url, json=body, headers=headers, timeout=self.p.timeout_s)
            resp.raise_for_status()
            content = resp.json()["choices"][0]["message"]["content"]
        except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMUnavailableError(
                f"LLM endpoint {self.p.base_url} could not answer an uncached prompt ({type(exc).__name__}: {exc}); "
                f"start the server, or set hardneg.llm.enabled: false (cache: {self.cache_dir})") from exc
        with atomic_open(path, "w", encoding="utf-8") as fh:
            json.dump({"model": self.p.model, "temperature": self.p.temperature, "prompt": prompt,
                       "content": content}, fh, ensure_ascii=False, indent=1)
        return content

    def negatives(self, caption: str, abnormal: bool, n: int) -> list[str]:
        return parse_lines(self.complete(prompt_for(caption, abnormal, n)))
