"""Text-view extraction throughput: the Ray Data path (distinct strings -> text-encoder actor
pool -> cache shards) vs a plain batched loop over the same encoder and the same texts, in one run.

    python benchmarks/bench_text_extraction.py [--encoder minilm] [--corpus tar_local]

The corpus' captions are the texts (TAR local: 5 per clip). Both paths embed every distinct
string once: the loop in batches of --batch-size in this process, Ray Data in its actor pool
(including actor start-up and model loading, and writing the cache). Prints texts/s and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--corpus", default="tar_local")
    ap.add_argument("--options", default="n_train=400,n_val=50,n_test=50",
                    help="corpus options k=v,... (default: a larger TAR-local corpus, 2,500 captions)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--actors", type=int, default=None, help="encoder actors (default: one per GPU or per 2 CPUs)")
    ap.add_argument("--work-dir", type=Path, default=Path("cache/corpora"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import ray

    from orchestrator.corpus import CorpusRequest, build_corpus, read_manifest
    from orchestrator.encoders.text import build_text_encoder
    from orchestrator.extract import extract_view
    from orchestrator.views import ViewSpec
    from workloads.tar import corpus_local  # noqa: F401  (registers tar_local)

    options = {k: int(v) for k, v in (kv.split("=") for kv in args.options.split(",") if kv)}
    manifest = build_corpus(CorpusRequest(args.corpus, "local", None, args.work_dir.resolve(), options))
    texts = sorted({t for r in read_manifest(manifest).to_pylist() for t in r["texts"] if t.strip()})
    device = "cuda" if torch.cuda.is_available() else "cpu"

    # 1) plain batched loop in this process
    enc = build_text_encoder(args.encoder).to(device)
    enc.embed_texts(texts[:8])  # warm-up
    t0 = time.perf_counter()
    for s in range(0, len(texts), args.batch_size):
        enc.embed_texts(texts[s:s + args.batch_size])
    loop_s = time.perf_counter() - t0
    del enc

    # 2) the Ray Data path into a fresh cache (includes actor start-up and model loading)
    ray.init(include_dashboard=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = extract_view(manifest, ViewSpec("text", args.encoder), Path(d), batch_size=args.batch_size,
                           num_actors=args.actors, progress=False)
        ray_s = time.perf_counter() - t0
    ray.shutdown()

    print(f"corpus {args.corpus}: {len(texts)} distinct texts of {res.n_items} items; encoder {args.encoder} "
          f"on {device}; torch threads in this process: {torch.get_num_threads()}")
    print(f"batched loop  : {loop_s:7.1f} s  ({len(texts) / loop_s:7.1f} texts/s)")
    print(f"Ray Data path : {ray_s:7.1f} s  ({len(texts) / ray_s:7.1f} texts/s)")
    print(f"text extraction: Ray Data / batched loop throughput ratio = {loop_s / ray_s:.2f}x")


if __name__ == "__main__":
    main()
