"""Curation of the training clips: named rules with reason codes, repairs, leakage checks and a quality report."""
