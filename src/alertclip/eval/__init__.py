"""Evaluation heads and protocols for video anomaly detection on frozen CLIP features."""
