"""Data path: the synthetic world, downloads, media decoding, annotations."""
