"""The fine level of the score alignment's DTW, over a band of the cost matrix only (compiled with numba, which
librosa brings; a pure-Python loop over a five-minute piece's million cells would take minutes)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def banded_dtw(cost, first, width):
    """Path (L, 2) of (score frame, audio frame) through `cost` (n, W): row i holds audio frames first[i] …
    first[i] + width[i] - 1. Every step, (1, 1), (1, 0) or (0, 1), adds the cost of the cell it reaches, so the
    diagonal is preferred where the costs are even (a held chord): the path may start anywhere in the first row's band
    and end anywhere in the last's."""
    n = cost.shape[0]
    big = np.inf
    total = np.full(cost.shape, big)
    came = np.zeros(cost.shape, dtype=np.int8)  # 0 diagonal, 1 from the row before, 2 from the left
    for k in range(width[0]):
        total[0, k] = cost[0, k]
        if k > 0 and total[0, k - 1] + cost[0, k] < total[0, k]:
            total[0, k] = total[0, k - 1] + cost[0, k]
            came[0, k] = 2
    for i in range(1, n):
        shift = first[i] - first[i - 1]
        for k in range(width[i]):
            c = cost[i, k]
            best = big
            step = 0
            above = k + shift  # the same audio frame in the row before
            if 1 <= above <= width[i - 1]:
                value = total[i - 1, above - 1] + c
                if value < best:
                    best, step = value, 0
            if 0 <= above < width[i - 1]:
                value = total[i - 1, above] + c
                if value < best:
                    best, step = value, 1
            if k > 0:
                value = total[i, k - 1] + c
                if value < best:
                    best, step = value, 2
            total[i, k] = best
            came[i, k] = step
    k = 0
    for j in range(width[n - 1]):
        if total[n - 1, j] < total[n - 1, k]:
            k = j
    path = np.empty((n + int(first[n - 1] + width[n - 1]), 2), dtype=np.int64)
    length = 0
    i = n - 1
    while True:
        path[length, 0] = i
        path[length, 1] = first[i] + k
        length += 1
        step = came[i, k]
        if i == 0 and (k == 0 or step != 2):
            break
        if step == 2:
            k -= 1
        elif step == 1:
            k = k + first[i] - first[i - 1]
            i -= 1
        else:
            k = k + first[i] - first[i - 1] - 1
            i -= 1
    return path[:length][::-1].copy()
