"""CLASP's all-candidates evaluation at the paper's test size, against two references, in one run.

The paper's stage 3-4 evaluation ranks every test speech item (~11k) for every text query; its
notebooks did it in a Python double loop (one cosine per (query, item) pair) that ran 3 h 10 min.
This script times, on the same 11,000 x 11,000 problem with d = 768:

* ``evaluation``: what the CLASP workload runs (``workloads.clasp.metrics``): L2 normalisation, the
  core's chunked single-relevant ranking (a matrix product per chunk of queries plus a counting
  pass, never a full sort), HITS@1 / MRR / meanR, and Macro-F1 over the seeded sampled negatives
  at the fixed and at a best threshold, plus the speech->text ranks and Macro-F1 over all N x N
  pairs (also timed without those two, for their cost);
* ``matmul``: the bare matrix product of the same shape (the floor any exact evaluation pays);
* ``double loop``: the notebook style, a cosine per pair in Python, timed on a few queries against
  all items and extrapolated to all queries (running it fully would take hours).

The double loop's ranks on its sample are checked against the evaluation's ranks, so the ratio
compares two computations of the same numbers. Prints the times and both ratios.

    python benchmarks/bench_clasp_ranking.py                    # 11,000 x 11,000, d = 768
    python benchmarks/bench_clasp_ranking.py --n 2000 --sample 3  # quick look
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from orchestrator import retrieval
from workloads.clasp.candidates import negatives_of, sample_candidates
from workloads.clasp.metrics import (
    best_threshold,
    macro_f1,
    macro_f1_all_pairs,
    pair_scores,
    ranks_all,
    ranks_speech_to_text,
    retrieval_metrics,
)


def make_problem(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Speech embeddings and text queries that are noisy copies of them (so ranks are spread, as
    with a trained model, rather than all 1 or all random)."""
    rng = np.random.default_rng(seed)
    speech = rng.standard_normal((n, dim), dtype=np.float32)
    queries = speech + 1.5 * rng.standard_normal((n, dim), dtype=np.float32)
    return queries, speech


def evaluation(queries: np.ndarray, speech: np.ndarray, seed: int, all_pairs: bool = True
               ) -> tuple[dict[str, float], np.ndarray]:
    """The workload's all-candidates evaluation (see ``ClaspWorkload._scores``) on raw embeddings;
    ``all_pairs=False`` leaves out what the all-items regime added (speech->text ranks, Macro-F1
    over all N x N pairs), for the before / after ratio."""
    q, s = retrieval.l2_normalize(queries), retrieval.l2_normalize(speech)
    groups = np.arange(len(q))  # one reading per sentence, as in Speech Brown
    ranks = ranks_all(q, s, groups)
    out = retrieval_metrics(ranks)
    cands, target = sample_candidates(groups, 5, seed, "test")
    scores, labels = pair_scores(q, s, negatives_of(cands, target))
    out["macro_f1_at_fixed"] = macro_f1(scores, labels, 0.5)
    out["threshold"], out["macro_f1_at_best"] = best_threshold(scores, labels)
    if all_pairs:
        out["s2t_hits1"] = retrieval_metrics(ranks_speech_to_text(s, q, groups))["hits1"]
        out["all_macro_f1_at_fixed"], out["all_macro_f1_at_best"] = macro_f1_all_pairs(
            q, s, groups, [0.5, out["threshold"]])
    return out, ranks


def double_loop_ranks(queries: np.ndarray, speech: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Notebook style: for each query, a cosine with every item one pair at a time, then a sort."""
    q, s = torch.from_numpy(queries), torch.from_numpy(speech)
    out = []
    for i in rows:
        sims = []
        for j in range(len(s)):
            sims.append((F.cosine_similarity(q[i].unsqueeze(0), s[j].unsqueeze(0)).item(), j))
        sims.sort(key=lambda x: (-x[0], x[1]))  # score descending, lower index first on ties
        out.append(next(k for k, (_, j) in enumerate(sims, start=1) if j == i))
    return np.asarray(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=11_000, help="queries = speech items (paper: ~11k test items)")
    p.add_argument("--dim", type=int, default=768, help="embedding size (LaBSE: 768)")
    p.add_argument("--sample", type=int, default=5, help="queries the double loop runs, to extrapolate from")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    queries, speech = make_problem(args.n, args.dim, args.seed)
    print(f"CLASP all-candidates evaluation: {args.n:,} queries x {args.n:,} speech items, d = {args.dim}, "
          f"torch threads {torch.get_num_threads()}", flush=True)

    t0 = time.perf_counter()
    product = queries @ speech.T
    t_matmul = time.perf_counter() - t0
    del product

    t0 = time.perf_counter()
    evaluation(queries, speech, args.seed, all_pairs=False)
    t_before = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics, ranks = evaluation(queries, speech, args.seed)
    t_eval = time.perf_counter() - t0

    rows = np.random.default_rng(args.seed).choice(args.n, size=min(args.sample, args.n), replace=False)
    t0 = time.perf_counter()
    loop_ranks = double_loop_ranks(queries, speech, rows)
    t_sample = time.perf_counter() - t0
    t_loop = t_sample / len(rows) * args.n
    # float32 cosines computed two ways may differ in the last bit; a rank may then move by a tie
    agree = np.abs(loop_ranks - ranks[rows])
    if agree.max() > 1:
        raise SystemExit(f"double loop and evaluation disagree on ranks: {loop_ranks} vs {ranks[rows]}")

    print(f"  evaluation (chunked ranking + metrics + Macro-F1): {t_eval:8.2f} s   "
          f"HITS@1 {metrics['hits1']:.3f}  MRR {metrics['mrr']:.3f}  meanR {metrics['mean_rank']:.1f}  "
          f"Macro-F1 {metrics['macro_f1_at_fixed']:.3f} (0.5) / {metrics['macro_f1_at_best']:.3f} (best)")
    print(f"    + speech->text ranks and Macro-F1 over all pairs: s->t HITS@1 {metrics['s2t_hits1']:.3f}, "
          f"all-pairs Macro-F1 {metrics['all_macro_f1_at_fixed']:.3f} (0.5) / "
          f"{metrics['all_macro_f1_at_best']:.3f} (best); without them: {t_before:.2f} s")
    print(f"  bare matrix product {args.n}x{args.dim} @ {args.dim}x{args.n}:   {t_matmul:8.2f} s")
    print(f"  notebook double loop, {len(rows)} queries x {args.n:,} items:    {t_sample:8.2f} s "
          f"-> {t_loop:,.0f} s ({t_loop / 3600:.2f} h) extrapolated to {args.n:,} queries "
          f"(ranks agree: max |diff| {int(agree.max())})")
    print(f"ratios: evaluation / matmul = {t_eval / t_matmul:.2f}x;  evaluation with / without the all-items "
          f"additions = {t_eval / t_before:.2f}x;  double loop / evaluation = "
          f"{t_loop / t_eval:,.0f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
