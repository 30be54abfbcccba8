#!/usr/bin/env python3
"""Turns the last `cargo bench --bench xent` run into the BENCHMARKS.md table:
median time, G logits/s and the ratio to the memcpy of the same logits
measured in the same run (target/criterion/<shape>/t<threads>/<bench>).

    python3 bench/criterion_table.py
"""
import json
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "criterion")
BENCHES = ["memcpy", "forward", "backward", "backward_lse", "fused", "fused_in_place"]


def median_ns(path):
    with open(os.path.join(path, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"]


def ms(ns):
    return f"{ns / 1e6:.2f} ms" if ns >= 1e5 else f"{ns:.0f} ns"


def main():
    groups = []
    for name in sorted(os.listdir(ROOT)):
        m = re.fullmatch(r"(\d+)x(\d+)_t(\d+)", name)
        if m:
            groups.append((int(m[1]) * int(m[2]), int(m[3]), name))
    print("| shape | threads | memcpy | " + " | ".join(BENCHES[1:]) + " |")
    print("|---|---|---|" + "---|" * (len(BENCHES) - 1))
    for n, threads, name in sorted(groups, key=lambda g: (-g[0], g[1])):
        d = os.path.join(ROOT, name)
        t = {b: median_ns(os.path.join(d, b)) for b in BENCHES if os.path.isdir(os.path.join(d, b))}
        if "memcpy" not in t:
            continue
        cells = [f"{ms(t[b])} · {n / t[b]:.2f} G/s · {t[b] / t['memcpy']:.2f}×" if b in t else "–" for b in BENCHES[1:]]
        shape = name.rsplit("_", 1)[0]
        print(f"| {shape} | {threads} | {ms(t['memcpy'])} | " + " | ".join(cells) + " |")
    capi = os.path.join(ROOT, "capi_1x10_forward_backward")
    if os.path.isdir(capi):
        print(f"\nC API per-call time, 1x10 xent_forward_backward: {median_ns(capi):.0f} ns (median)")


if __name__ == "__main__":
    main()
