"""Extraction throughput: the Ray Data path (decode tasks -> encoder actor pool -> cache shards)
vs a plain sequential per-file PyTorch loop, same encoder, same corpus, measured in one run.

    python benchmarks/bench_extraction.py [--encoder whisper_tiny_en] [--n-words 300]

Prints audio-seconds per second for both and their ratio. On a GPU machine the Ray path gives
each encoder actor one GPU; the loop runs on the same device the encoder picks.
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
    ap.add_argument("--encoder", default="whisper_tiny_en")
    ap.add_argument("--corpus", default="qbe_local_swedish")
    ap.add_argument("--n-words", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--actors", type=int, default=None, help="encoder actors (default: one per GPU or per 2 CPUs)")
    ap.add_argument("--work-dir", type=Path, default=Path("cache/corpora"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import ray

    from orchestrator.audio import load_audio
    from orchestrator.corpus import CorpusRequest, build_corpus, read_manifest
    from orchestrator.encoders.base import build_encoder
    from orchestrator.extract import extract
    from workloads.qbe import corpus_local  # noqa: F401  (registers the QbE corpora)
    manifest = build_corpus(CorpusRequest(args.corpus, "local", None, args.work_dir.resolve(), {"n_words": args.n_words}))
    rows = read_manifest(manifest).to_pylist()
    device = "cuda" if torch.cuda.is_available() else "cpu"

    # 1) plain sequential loop: decode one file, encode it, next (batch 1), in this process
    enc = build_encoder(args.encoder).to(device)
    enc.embed([load_audio(rows[0]["id"], rows[0]["audio_path"], enc.sample_rate)])  # warm-up
    t0 = time.perf_counter()
    audio_s = 0.0
    for r in rows:
        wav = load_audio(r["id"], r["audio_path"], enc.sample_rate, r["offset"], r["duration"] or None)
        enc.embed([wav])
        audio_s += len(wav) / enc.sample_rate
    loop_s = time.perf_counter() - t0
    del enc

    # 2) the Ray Data path into a fresh cache (includes actor start-up and model loading)
    ray.init(include_dashboard=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = extract(manifest, args.encoder, {}, Path(d), batch_size=args.batch_size, num_actors=args.actors)
        ray_s = time.perf_counter() - t0
    ray.shutdown()

    print(f"corpus: {len(rows)} clips, {audio_s:.1f} s of audio; encoder {args.encoder} on {device}; "
          f"torch threads in this process: {torch.get_num_threads()}")
    print(f"sequential loop : {loop_s:7.1f} s  ({audio_s / loop_s:7.1f} audio-s/s, {len(rows) / loop_s:6.1f} clips/s)")
    print(f"Ray Data path   : {ray_s:7.1f} s  ({res.audio_seconds / ray_s:7.1f} audio-s/s, {res.n_items / ray_s:6.1f} clips/s)")
    print(f"extraction: Ray Data / sequential throughput ratio = {(res.audio_seconds / ray_s) / (audio_s / loop_s):.2f}x")


if __name__ == "__main__":
    main()
