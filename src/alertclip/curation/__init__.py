"""Curation of the training clips: named rules with reason codes, repairs, leakage checks and a quality report."""

from .curate import curate, write_outputs
from .lexicon import CATEGORY_WORDS, categories_in
from .rules import LeakageError

__all__ = ["CATEGORY_WORDS", "LeakageError", "categories_in", "curate", "write_outputs"]
