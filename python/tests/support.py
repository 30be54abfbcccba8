"""Shared by the Python tests: a float64 reference of PyTorch's cross_entropy."""

import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def reference(z, rows, cols, labels=None, probs=None, weight=None, reduction="mean", ignore_index=-100,
              smoothing=0.0):
    """Loss (float or per-row list) and gradient of the reduced loss (flat
    list), in float64, following F.cross_entropy's definitions."""
    w = weight or [1.0] * cols
    losses, grads, denom = [], [0.0] * (rows * cols), 0.0
    for i in range(rows):
        row = z[i * cols:(i + 1) * cols]
        m = max(row)
        s = sum(math.exp(v - m) for v in row)
        lse = m + math.log(s)
        p = [math.exp(v - lse) for v in row]
        if probs is not None:
            c = [w[j] * ((1 - smoothing) * probs[i * cols + j] + smoothing / cols) for j in range(cols)]
            losses.append(sum(c[j] * (lse - row[j]) for j in range(cols)))
            g = [sum(c) * p[j] - c[j] for j in range(cols)]
            denom += 1
        elif labels[i] == ignore_index:
            losses.append(0.0)
            g = [0.0] * cols
        else:
            y = labels[i]
            c = [smoothing / cols * w[j] for j in range(cols)]
            c[y] += (1 - smoothing) * w[y]
            losses.append(sum(c[j] * (lse - row[j]) for j in range(cols)))
            g = [sum(c) * p[j] - c[j] for j in range(cols)]
            denom += w[y]
        grads[i * cols:(i + 1) * cols] = g
    if reduction == "none":
        return losses, grads
    if reduction == "sum":
        return sum(losses), grads
    return sum(losses) / denom, [g / denom for g in grads]


def close(a, b, rel=1e-5, abs_=1e-6):
    return abs(a - b) <= abs_ + rel * abs(b)
