"""Evaluation: one pass over a split, metrics, the report and colour maps."""
