"""One ``<stage>@<backbone>-<dataset>`` evaluation's inputs, opened once: the backbone, the pair's features, the
dataset's checked test set, and the stage's output directory (the same path the report reads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..params import Params
from ..paths import result_path
from .features import load_features
from .inputs import features_dir, open_backbone, read_testset, split_variant


@dataclass(frozen=True)
class EvalInputs:
    """What an evaluation stage ``<stage>@<backbone>-<dataset>`` reads, opened, and where it writes."""

    backbone: str
    dataset: str
    clip: Any  # the backbone's open_clip model
    tokenizer: Any
    features: Any  # alertclip.eval.features.FeatureSet of the pair
    testset: Any  # alertclip.eval.testsets.CheckedTestSet of the dataset
    frame_counts: dict[str, int] | None  # decoded frames per test video under the exact protocol, None under vadclip
    out: Path  # results/<stage>/<backbone>/<dataset>

    def test(self, p: Params) -> dict:
        """The test videos' features on the crop they are scored on (``eval.test_crop``)."""
        return self.features.by_video("test", crop=p.eval.test_crop)

    def train(self) -> dict:
        """The training videos' features, every crop (the weakly supervised heads train on all of them)."""
        return self.features.by_video("train", crop="all")


def eval_inputs(p: Params, variant: str | None, stage: str) -> EvalInputs:
    """Check ``--variant <backbone>-<dataset>`` and open the backbone, the pair's features and the dataset's test set."""
    backbone, dataset = split_variant(p, variant, stage)
    clip, tok = open_backbone(p, backbone, stage)
    testset = read_testset(p, dataset)
    counts = testset.n_frames if p.eval.protocol == "exact" else None
    return EvalInputs(backbone, dataset, clip, tok, load_features(features_dir(backbone, dataset)), testset, counts,
                      result_path(stage, backbone, dataset, ""))
