"""Offline explanations (``python -m export explain``): region shares, per-frame curves, behaviour correlations."""
