"""Hard negatives: lexicon, inverter, validator, LLM backend (fake loopback server), table builder."""

from __future__ import annotations

import json
import logging
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from alertclip.data.captions import norm_caption
from alertclip.data.vagta import category_of
from alertclip.hardneg.build import build, standard_negatives
from alertclip.hardneg.inverter import invert
from alertclip.hardneg.lexicon import find_matches, polarity
from alertclip.hardneg.llm import LLMClient, LLMUnavailableError
from alertclip.hardneg.validator import validate
from alertclip.synth import captions, world
from alertclip.synth.render import Car, EventInstance, Person, Thing

FIXTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "vagta" / "qwen_vl_train.excerpt.json"
SCENES = list(captions.SCENE_PHRASE)


def _actors(event: world.Event):
    kind = event.actors
    if kind == "two_people":
        return Person("red", "black"), Person("blue", "black")
    if kind == "person":
        return Person("green", "black"), None
    if kind == "two_cars":
        return Car("white"), Car("black")
    if kind == "object":
        return Thing("kiosk", "yellow"), None
    return Person("purple", "black"), Thing("bin", "orange")


def _instance(event: world.Event) -> EventInstance:
    a, b = _actors(event)
    return EventInstance(name=event.name, start=0.0, end=1.0, x=0.5, y=0.5, a=a, b=b)


def _synth_clips() -> pl.DataFrame:
    rows = []
    for event in world.EVENTS:
        ev = _instance(event)
        for variant in range(len(event.verbs)):
            for scene in SCENES:
                rows.append({"clip_key": f"{event.name}-{variant}-{scene}", "video": f"v/{event.name}.mp4",
                             "split": "train", "abnormal": event.abnormal, "category": event.category,
                             "region_caption": captions.event_caption(ev, scene, variant), "hard_negative": []})
    return pl.DataFrame(rows, schema_overrides={"hard_negative": pl.List(pl.Utf8)})


def test_lexicon_covers_every_world_phrasing_both_ways():
    for event in world.EVENTS:
        ev = _instance(event)
        want = "abnormal" if event.abnormal else "normal"
        for variant in range(len(event.verbs)):
            caption = captions.event_caption(ev, "street", variant)
            assert polarity(caption) == want, caption
            assert any(m.phrase.event == event.name for m in find_matches(caption)), caption
            negs = invert(caption, 3, random.Random(0))
            assert len(negs) == 3, (caption, negs)
            cp = world.counterpart(event.name).name
            for neg in negs:
                assert polarity(neg) != want and any(m.phrase.event == cp for m in find_matches(neg)), neg


def test_inverter_hand_cases():
    negs = invert("The man in white suddenly struck the man in black on the head.", 3, random.Random(1))
    assert len(negs) == 3 and len({norm_caption(n) for n in negs}) == 3
    for n in negs:
        assert n.startswith("The man in white suddenly ") and n.endswith(" the man in black on the head.")
        assert polarity(n) == "normal"
    assert invert("Some people are shopping inside the store.", 2, 0)[0].startswith("Some people are ")
    # Sentence case and the moved actor keep their case.
    neg = invert("The red bin is set on fire in the street.", 1, 0)[0]
    assert neg[0].isupper() and "the red bin" in neg and neg.endswith(" in the street.")
    # Fewer when impossible, never padded; nothing when no event phrase is known.
    many = invert("A house exploded.", 10, 0)
    assert 0 < len(many) < 10 and len({norm_caption(n) for n in many}) == len(many)
    assert invert("A red car and a blue wall.", 3, 0) == []


@pytest.mark.parametrize(("negative", "reason"), [
    ("", "empty"),
    ("The person in red punches the person in blue in the street.", "equals_positive"),
    ("the person in red talks with the person in blue in the street", "duplicate"),
    ("The person in red talks with one6 person in blue in the street.", "typo"),
    ("The person in red talks with the person in blue 在街上.", "non_english"),
    ("The person in red kicks the person in blue in the street.", "label_not_flipped"),
    ("The person in red waits in the street.", "label_not_flipped"),  # polarity unknown to the lexicon
    ("A dog talks with a cat.", "low_overlap"),
])
def test_validator_reasons(negative, reason):
    positive = "The person in red punches the person in blue in the street."
    seen = ["The person in red talks with the person in blue in the street."]
    ok, got = validate(positive, negative, True, seen=seen)
    assert (ok, got) == (False, reason)
    assert validate(positive, "The person in red greets the person in blue in the street.", True, seen=seen) \
        == (True, None)


def _fixture_clips() -> pl.DataFrame:
    if not FIXTURE.exists():
        pytest.skip(f"fixture absent: {FIXTURE}")
    items = json.loads(FIXTURE.read_text(encoding="utf-8"))["items"]
    rows = [{"clip_key": f"{i}", "video": it["video"], "split": "train", "abnormal": category_of(it["video"]) != "Normal",
             "category": "x", "region_caption": it["region_caption"], "hard_negative": it["hard_negative"]}
            for i, it in enumerate(items)]
    return pl.DataFrame(rows, schema_overrides={"hard_negative": pl.List(pl.Utf8)})


def test_real_fixture_defects_rejected_and_rules_mostly_valid(params_of):
    clips = _fixture_clips()
    hard, _, stats = build(clips, params_of("hardneg", k=3))
    for r in clips.iter_rows(named=True):
        for neg in r["hard_negative"]:
            if norm_caption(neg) == norm_caption(r["region_caption"]):
                assert validate(r["region_caption"], neg, r["abnormal"])[1] == "equals_positive"
    assert stats["rejected_by_source"]["upstream"].get("equals_positive", 0) >= 1
    assert stats["rejected_by_source"]["upstream"].get("typo", 0) >= 1
    assert stats["upstream_empty_lists"] == sum(not r["hard_negative"] for r in clips.iter_rows(named=True)) >= 1
    assert stats["rejected"]["non_english"] >= 1  # the positive's own Chinese fragment never reaches a negative
    assert not hard.filter(pl.col("negative").str.contains("[\u4e00-\u9fff]")).height
    # Inverter: share of captions with at least one valid rule negative.
    valid = 0
    for r in clips.iter_rows(named=True):
        negs = invert(r["region_caption"], 3, random.Random(0))
        valid += any(validate(r["region_caption"], n, r["abnormal"])[0] for n in negs)
    rate = valid / clips.height
    print(f"rule-inverter valid rate on the fixture: {rate:.2f}; coverage {stats['coverage']:.2f}")
    assert rate >= 0.75
    assert stats["coverage"] >= 0.8
    assert hard.group_by("clip_key").agg(pl.col("negative").n_unique() == pl.len()).get_column("negative").all()


class _FakeOpenAI(BaseHTTPRequestHandler):
    calls: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        content = ("1. The person in red talks with the person in blue in the street.\n"
                   "2. The person in red greets the person in blue in the street.\n- bad line 一\n")
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    _FakeOpenAI.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_llm_cached_and_offline(fake_server, tmp_path, monkeypatch, params_of):
    monkeypatch.setenv("TEST_KEY", "sekrit")
    lp = params_of("hardneg.llm", enabled=True, base_url=fake_server, api_key_env="TEST_KEY",
                   cache_dir=str(tmp_path / "c"), timeout_s=5)
    clips = pl.DataFrame({"clip_key": ["c1"], "video": ["v"], "split": ["train"], "abnormal": [True],
                          "category": ["Fighting"], "region_caption": ["The person in red kicks the person in blue "
                                                                       "in the street."],
                          "hard_negative": [[]]}, schema_overrides={"hard_negative": pl.List(pl.Utf8)})
    params = params_of("hardneg", k=5, llm=lp)
    hard1, _, st1 = build(clips, params)
    assert len(_FakeOpenAI.calls) == 1 and _FakeOpenAI.calls[0]["path"] == "/v1/chat/completions"
    assert _FakeOpenAI.calls[0]["auth"] == "Bearer sekrit"
    assert "llm" in hard1.get_column("source").to_list()
    hard2, _, st2 = build(clips, params)
    assert len(_FakeOpenAI.calls) == 1 and st2["llm"]["requests"] == 0 and hard2.equals(hard1)
    # Endpoint down: the cached prompt still answers, an uncached one raises naming the URL.
    down = lp.model_copy(update={"base_url": "http://127.0.0.1:9/v1"})
    hard3, _, _ = build(clips, params.model_copy(update={"llm": down}))
    assert hard3.equals(hard1)
    client = LLMClient(down)
    with pytest.raises(LLMUnavailableError, match=r"http://127\.0\.0\.1:9/v1"):
        client.complete("an uncached prompt")


def test_k_larger_than_alternatives_warns(caplog, params_of):
    clips = pl.DataFrame({"clip_key": ["a"], "video": ["v"], "split": ["train"], "abnormal": [True],
                          "category": ["Explosion"], "region_caption": ["The yellow kiosk explodes in the shop."],
                          "hard_negative": [["The yellow kiosk explodes in the shop."]]},
                         schema_overrides={"hard_negative": pl.List(pl.Utf8)})
    with caplog.at_level(logging.WARNING):
        hard, _, stats = build(clips, params_of("hardneg", k=16))
    assert stats["clips_short_of_k"] == 1 and 0 < hard.height < 16
    assert hard.get_column("negative").n_unique() == hard.height
    assert "fewer than k=16" in caplog.text and stats["rejected"]["equals_positive"] == 1


def test_standard_negatives_opposite_label_deterministic():
    clips = _synth_clips()
    std = standard_negatives(clips, 3, seed=7)
    again = standard_negatives(clips.sample(fraction=1.0, shuffle=True, seed=1), 3, seed=7)
    assert std.sort("clip_key", "rank").equals(again.sort("clip_key", "rank"))
    label = dict(zip(clips["clip_key"], clips["abnormal"]))
    assert all(label[a] != label[b] for a, b in zip(std["clip_key"], std["negative_clip_key"]))
    assert std.group_by("clip_key").len().get_column("len").min() == 3
    assert not std.equals(standard_negatives(clips, 3, seed=8))


def test_synthetic_counterpart_share(params_of):
    clips = _synth_clips()
    hard, _, stats = build(clips, params_of("hardneg", k=3))
    print({k: stats[k] for k in ("coverage", "by_source", "synth_counterpart_share", "rejected")})
    assert stats["coverage"] == 1.0
    assert stats["synth_counterpart_share"] >= 0.95
    assert stats["by_source"]["rules"] == 3 * clips.height


def test_stage_writes_outputs_and_show(tmp_path, monkeypatch, params_of):
    from types import SimpleNamespace

    from alertclip.stages import hardneg as stage

    monkeypatch.chdir(tmp_path)
    stage.CLIPS.parent.mkdir(parents=True)
    _synth_clips().write_parquet(stage.CLIPS)
    stage.run(SimpleNamespace(hardneg=params_of("hardneg", k=2)), progress=False)
    assert pl.read_parquet(stage.HARDNEG).height == 2 * _synth_clips().height
    assert pl.read_parquet(stage.STANDARD).height > 0
    assert json.loads(stage.STATS.read_text())["coverage"] == 1.0
    text = stage.show(2)
    assert "  + " in text and "[rules   ]" in text
