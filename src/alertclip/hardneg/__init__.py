"""Hard negatives for Alert-CLIP: lexicon, rule inverter, one validator, optional LLM backend, table builder."""

from .build import build, standard_negatives
from .inverter import invert
from .lexicon import polarity, synth_event
from .llm import LLMClient, LLMUnavailableError
from .validator import REASONS, validate

__all__ = ["REASONS", "LLMClient", "LLMUnavailableError", "build", "invert", "polarity", "standard_negatives",
           "synth_event", "validate"]
