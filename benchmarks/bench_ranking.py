"""Evaluation speed: chunked ranking (orchestrator.retrieval) vs a naive per-query Python loop.

The naive loop is what the papers' notebooks did (one dot product per query/item pair, a Python
sort, a walk over the list). Over all N queries it takes minutes, so it is timed on a random
subset of queries and extrapolated linearly (its cost per query is constant: every query scans
the whole database). Both are checked to agree on that subset before the ratio is printed.

    python benchmarks/bench_ranking.py --n 10000 --labels 1000 --dim 256 --naive-queries 200
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from orchestrator.retrieval import l2_normalize, multi_relevant_metrics, naive_multi_relevant_ap


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="items (queries = database, query excluded)")
    p.add_argument("--labels", type=int, default=1_000, help="distinct labels")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--naive-queries", type=int, default=200, help="queries timed with the naive loop")
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    labels = rng.integers(0, args.labels, size=args.n)
    # Items of a label share a centre, so the rankings are not pure noise (realistic AP values).
    centres = rng.standard_normal((args.labels, args.dim)).astype(np.float32)
    x = l2_normalize(centres[labels] + 2.0 * rng.standard_normal((args.n, args.dim)).astype(np.float32))
    ks = (1, 5, 10, 20)

    t0 = time.perf_counter()
    full = multi_relevant_metrics(x, x, labels, labels, exclude_self=True, ks=ks, ap_k=10, chunk=args.chunk)
    t_chunked = time.perf_counter() - t0

    n_sub = min(args.naive_queries, args.n)
    subset = np.sort(rng.choice(args.n, size=n_sub, replace=False))
    t0 = time.perf_counter()
    naive = naive_multi_relevant_ap(x, x, labels, labels, exclude_self=True, ks=ks, ap_k=10, query_indices=subset)
    t_naive_sub = time.perf_counter() - t0
    t_naive = t_naive_sub * args.n / n_sub

    check = multi_relevant_metrics(
        x, x, labels, labels, exclude_self=True, ks=ks, ap_k=10, chunk=args.chunk, query_indices=subset
    )
    # Float32 dot products summed in a different order can swap near-tied items; that moves a
    # mean metric by far less than 1e-6 here.
    worst = max(abs(check[k] - naive[k]) for k in naive)
    agree = worst < 1e-6

    print(
        f"full-set metrics (chunked): map={full['map']:.4f} map@10={full['map@10']:.4f} "
        f"mrr={full['mrr']:.4f} recall@20={full['recall@20']:.4f} over {int(full['n_queries'])} queries"
    )
    print(
        f"agreement on the {n_sub}-query subset: max |chunked - naive| over {len(naive)} metrics = "
        f"{worst:.2e} ({'OK' if agree else 'MISMATCH'})"
    )
    print(
        f"ranking: chunked {args.n}x{args.n} in {t_chunked:.2f} s; naive (extrapolated from {n_sub} "
        f"queries, measured {t_naive_sub:.1f} s) {t_naive:.1f} s; speed-up {t_naive / t_chunked:.1f} x"
    )
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
