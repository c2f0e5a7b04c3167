"""Clips per second of the whisper_tiny_en encoder on 1 s clips at several batch sizes.

Why: extraction throughput decides whether a local-profile sweep is minutes or hours, and the
batch size the Ray Data encoder stage should use on a CPU node.

    python benchmarks/encoder_speed.py [--clips 64] [--seconds 1.0] [--batch-sizes 1 8 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from orchestrator.encoders.base import build_encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--encoder", default="whisper_tiny_en")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs (shared CPUs are noisy)")
    args = ap.parse_args()

    enc = build_encoder(args.encoder)
    rng = np.random.default_rng(0)
    n = int(args.seconds * enc.sample_rate)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for _ in range(args.clips)]
    print(f"{args.encoder}: {args.clips} clips of {args.seconds:g} s, torch threads {torch.get_num_threads()}")
    for bs in args.batch_sizes:
        enc.embed(clips[:bs])  # first call at a new shape is slower
        dt = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            for i in range(0, len(clips), bs):
                enc.embed(clips[i : i + bs])
            dt = min(dt, time.perf_counter() - start)
        print(f"  batch {bs:3d}: {len(clips) / dt:7.1f} clips/s  ({len(clips) * args.seconds / dt:7.1f} audio-s/s)")


if __name__ == "__main__":
    main()
