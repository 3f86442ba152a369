"""Histogram buckets shared by the statistics, their HTML view and validate's drift check."""

from __future__ import annotations

HISTOGRAM_BUCKETS = 10


def rebucket(buckets, edges):
    """Mass of `buckets` on the common `edges`, spread uniformly inside each bucket."""
    import numpy as np

    mass = np.zeros(len(edges) - 1)
    for low, high, count in buckets:
        if high <= low:  # a constant feature: one point
            mass[min(max(np.searchsorted(edges, low, side="right") - 1, 0), len(mass) - 1)] += count
            continue
        overlap = np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0, None)
        mass += count * overlap / (high - low)
    return mass
