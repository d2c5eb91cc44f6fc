"""Judging, from a server's side, how the crawler spaced its requests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence


def spaced(times: Sequence[float], interval: float) -> bool:
    """Were these arrivals (a server's) of starts that the crawler spaced ``interval``
    apart (5% more, in fact)? Their whole span holds nearly one interval per gap, and
    no gap is under half an interval. The server stamps each arrival with its own
    jitter, which on a loaded machine moves a single gap by tens of milliseconds, but
    the span only at its two ends."""
    ordered = sorted(times)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ordered)]
    return ordered[-1] - ordered[0] >= 0.9 * interval * len(gaps) and min(gaps) >= interval / 2
