"""alertclip: the reproducible experiment pipeline for Alert-CLIP."""

__version__ = "0.1.0"
