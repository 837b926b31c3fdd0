"""Multi-crop features (params ``features.crops``): the views, their index, selecting a crop, and the weakly split.

VadCLIP's released features hold ten views per snippet (crop 0 = the centre); test videos are scored on one
(``eval.test_crop``), weakly supervised heads train on every view as its own sample ``<video>__<k>``.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch
from repo_params import repo_params

from alertclip import factory
from alertclip.eval.features import FeatureSet, crop_views, extract, load_features
from alertclip.eval.weakly import split_train_val
from alertclip.factory import CHECKPOINT_FILE, images_to_tensor

H, W = 16, 24  # not square: a height/width mix-up shows
SIDE = H * 7 // 8  # 14: 7/8 of the short side


def _images(n: int = 2, h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _five(img: np.ndarray) -> list[np.ndarray]:
    """The five views of one (H, W, 3) image, by plain slicing: centre, top-left, top-right, bottom-left, bottom-right."""
    h, w = img.shape[:2]
    top, left = round((h - SIDE) / 2), round((w - SIDE) / 2)
    return [img[top:top + SIDE, left:left + SIDE], img[:SIDE, :SIDE], img[:SIDE, w - SIDE:],
            img[h - SIDE:, :SIDE], img[h - SIDE:, w - SIDE:]]


# ---------------------------------------------------------------------------------------------- crop_views


def test_one_crop_is_the_whole_frame():
    images = _images()
    out = crop_views(images, 1)
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_five_crops_centre_first_then_the_corners_snippet_major():
    images = _images(3)
    out = crop_views(images, 5)
    assert out.shape == (3 * 5, SIDE, SIDE, 3) and out.dtype == np.uint8
    for b, img in enumerate(images):
        for k, expected in enumerate(_five(img)):
            np.testing.assert_array_equal(out[5 * b + k], expected, err_msg=f"image {b}, crop {k}")
    # the views really differ (the corners of a random image are not each other)
    assert len({out[k].tobytes() for k in range(5)}) == 5


def test_ten_crops_add_the_horizontal_flips_in_the_same_order():
    images = _images(2)
    out = crop_views(images, 10)
    assert out.shape == (2 * 10, SIDE, SIDE, 3) and out.dtype == np.uint8
    for b, img in enumerate(images):
        views = _five(img)
        for k in range(5):
            np.testing.assert_array_equal(out[10 * b + k], views[k], err_msg=f"image {b}, crop {k}")
            np.testing.assert_array_equal(out[10 * b + 5 + k], views[k][:, ::-1], err_msg=f"image {b}, crop {5 + k}")
    np.testing.assert_array_equal(crop_views(images, 10)[:5], crop_views(images, 5)[:5])  # 0-4 are the five crops


# ---------------------------------------------------------------------------------------------- FeatureSet.by_video


def _crop_set(n_crops: int = 5, shuffle: bool = True) -> FeatureSet:
    """Two test videos (3 and 2 snippets) and one train video (2 snippets), each row's feature encoding
    (video index, snippet, crop) so a selection can be read back exactly."""
    rows = [(v, split, s, k) for v, split, t in (("a", "test", 3), ("b", "test", 2), ("c", "train", 2))
            for s in range(t) for k in range(n_crops)]
    if shuffle:  # by_video orders by snippet, whatever the row order
        rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    feats = np.array([["abc".index(v), s, k] for v, _, s, k in rows], dtype=np.float16)
    return FeatureSet(feats, [r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows]),
                      {"crops": n_crops} if n_crops > 1 else {}, np.array([r[3] for r in rows]) if n_crops > 1 else None)


@pytest.mark.parametrize("crop", [0, 3])
def test_by_video_one_crop_selects_that_view(crop):
    by = _crop_set().by_video("test", crop=crop)
    assert set(by) == {"a", "b"}
    np.testing.assert_array_equal(by["a"], [[0, s, crop] for s in range(3)])
    np.testing.assert_array_equal(by["b"], [[1, s, crop] for s in range(2)])
    assert by["a"].dtype == np.float32


def test_by_video_all_crops_are_samples_of_their_own():
    by = _crop_set().by_video("train", crop="all")
    assert set(by) == {f"c__{k}" for k in range(5)}
    for k in range(5):
        np.testing.assert_array_equal(by[f"c__{k}"], [[2, 0, k], [2, 1, k]])
    assert set(_crop_set().by_video(crop="all")) == {f"{v}__{k}" for v in "abc" for k in range(5)}


def test_by_video_with_crops_needs_a_crop_and_an_existing_one():
    fs = _crop_set()
    with pytest.raises(ValueError, match=r"features of 5 crops: pick one \(crop=k\) or all"):
        fs.by_video("test")
    for bad in (5, 7, -1, np.int64(5)):
        with pytest.raises(ValueError, match=rf"crop {bad} does not exist: the features hold 5 crop"):
            fs.by_video("test", crop=bad)
    # neither an index nor "all" (a params string, a typo) would select no row at all: it fails instead
    for bad in ("1", "every", 1.0):
        with pytest.raises(ValueError, match=r"crop must be a view index \(int\) or 'all', got"):
            fs.by_video("test", crop=bad)
    # a numpy index (read from an index table) selects like an int
    np.testing.assert_array_equal(fs.by_video("test", crop=np.int64(2))["b"], [[1, s, 2] for s in range(2)])


def test_by_video_one_view_is_unchanged():
    fs = _crop_set(n_crops=1)
    by = fs.by_video("test")
    np.testing.assert_array_equal(by["a"], [[0, s, 0] for s in range(3)])
    assert fs.by_video("test", crop=0).keys() == by.keys()  # eval.test_crop 0 on one-view features
    with pytest.raises(ValueError, match="crop 1 does not exist"):
        fs.by_video("test", crop=1)


# ---------------------------------------------------------------------------------------------- extract(..., crops=)


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    torch.manual_seed(0)
    clip, _, _, _ = factory.create("alertclip-tiny")
    d = tmp_path_factory.mktemp("bb")
    factory.save_checkpoint(clip, d / CHECKPOINT_FILE, arch="alertclip-tiny")
    return d


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    """A frames directory as the frames stage writes it: two snippet shards, a train and a test video."""
    d = tmp_path_factory.mktemp("frames")
    images = _images(5, 64, 64, seed=1)
    np.save(d / "snippets-000.npy", images[:3])
    np.save(d / "snippets-001.npy", images[3:])
    pl.DataFrame({"video": ["V/Fighting/F1.mp4"] * 3 + ["V/Normal/Normal_Videos_1.mp4"] * 2,
                  "split": ["test"] * 3 + ["train"] * 2, "snippet": [0, 1, 2, 0, 1], "frame": [8, 24, 40, 8, 24],
                  "shard": [0, 0, 0, 1, 1], "row": [0, 1, 2, 0, 1]}).write_parquet(d / "snippets.parquet")
    return d, images


def test_extract_five_crops_one_row_per_snippet_and_crop(tiny_backbone, frames_dir, tmp_path):
    frames, images = frames_dir
    cache = tmp_path / "cache"  # one cache for both: the crop count is part of the cache key
    precision = repo_params("features").precision
    one = extract(tiny_backbone, frames, tmp_path / "one", "alertclip-tiny", batch_size=2, cache_dir=cache, name="b",
                  precision=precision, crops=1)
    five = extract(tiny_backbone, frames, tmp_path / "five", "alertclip-tiny", batch_size=2, cache_dir=cache, name="b",
                   precision=precision, crops=5)
    snippets = pl.read_parquet(frames / "snippets.parquet")

    # one view: the index and meta as before crops existed
    index1 = pl.read_parquet(tmp_path / "one" / "index.parquet")
    assert index1.columns == ["video", "split", "snippet", "frame"]
    assert index1.equals(snippets.select("video", "split", "snippet", "frame"))
    assert "crops" not in one and "crops" not in json.loads((tmp_path / "one" / "meta.json").read_text())
    fs1 = load_features(tmp_path / "one")
    assert fs1.features.shape == (5, one["dim"]) and fs1.crop is None and one["n_snippets"] == 5

    # five views: one row per (snippet, crop), the crops of a snippet adjacent, in crop order
    index5 = pl.read_parquet(tmp_path / "five" / "index.parquet")
    assert index5.height == 5 * 5 and index5.columns == ["video", "split", "snippet", "frame", "crop"]
    assert index5["crop"].to_list() == list(range(5)) * 5
    expected = snippets.select("video", "split", "snippet", "frame").select(pl.all().repeat_by(5).explode())
    assert index5.drop("crop").equals(expected)
    assert five["crops"] == 5 and json.loads((tmp_path / "five" / "meta.json").read_text())["crops"] == 5
    assert five["n_snippets"] == 5 and five["n_videos"] == 2
    fs5 = load_features(tmp_path / "five")
    assert fs5.features.shape == (25, five["dim"])

    # each row is the embedding of its own view (index and array aligned), and crop 0 is not the whole frame
    clip, _, _, _ = factory.create("alertclip-tiny", pretrained=tiny_backbone / CHECKPOINT_FILE)
    clip = clip.float().eval()
    with torch.no_grad():
        views = crop_views(images[[2]], 5)  # test snippet 2 of V/Fighting/F1.mp4
        emb = clip.encode_image(images_to_tensor(views, clip), normalize=True).numpy()
    test0 = fs5.by_video("test", crop=0)["V/Fighting/F1.mp4"]
    test3 = fs5.by_video("test", crop=3)["V/Fighting/F1.mp4"]
    np.testing.assert_allclose(test0[2], emb[0], atol=2e-3)
    np.testing.assert_allclose(test3[2], emb[3], atol=2e-3)
    assert not np.allclose(test0[2], fs1.by_video("test")["V/Fighting/F1.mp4"][2], atol=1e-2)
    assert set(fs5.by_video("train", crop="all")) == {f"V/Normal/Normal_Videos_1.mp4__{k}" for k in range(5)}


# ---------------------------------------------------------------------------------------------- weakly split


def test_weakly_split_keeps_the_crops_of_a_video_together():
    videos = [f"V/Fighting/Fighting{i:03d}_x264.mp4" for i in range(10)] + \
             [f"V/Normal/Normal_Videos_{i:03d}_x264.mp4" for i in range(10)]
    train = {f"{v}__{k}": np.zeros((2, 4), np.float32) for v in videos for k in range(10)}
    fit, val = split_train_val(train, 0.3)
    assert set(fit) | set(val) == set(train) and not set(fit) & set(val)

    def video(sample: str) -> str:
        return sample.rsplit("__", 1)[0]

    fit_videos, val_videos = {video(s) for s in fit}, {video(s) for s in val}
    assert not fit_videos & val_videos, "a video has crops on both sides of the split"
    for v in val_videos:
        assert {f"{v}__{k}" for k in range(10)} <= set(val)
    # the same videos as a one-view split of those videos: per kind round(0.3 * 10) = 3, both kinds validated
    one_fit, one_val = split_train_val({v: np.zeros((2, 4), np.float32) for v in videos}, 0.3)
    assert val_videos == set(one_val) and fit_videos == set(one_fit)
    assert sum("Normal" in v for v in val_videos) == 3 and sum("Fighting" in v for v in val_videos) == 3
