"""Query speed of a registered retrieval model over a 10,000-item index: p50/p99 latency of a
text query through the model as the search CLI loads it and through ``mlflow models serve``, and
the share of that time spent in the text encoder and in the index search.

The index is the model's own items (a real trained trial) topped up with synthetic items in the
head's output space (random unit vectors) to ``--n-items``; the query path is the real one: text
-> the model's text encoder -> head -> FAISS search -> metadata.

    python benchmarks/bench_query.py                       # trains a tiny TAR trial first (~1-2 min)
    python benchmarks/bench_query.py --model models:/atst_lr@champion --tracking-uri sqlite:///mlruns/mlflow.db
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

QUERIES = ["a dog barks in the rain", "birds chirp near a river", "a car passes by on a wet road",
           "people talk in a busy cafe", "wind blows through the trees", "a door creaks and slams shut",
           "footsteps on gravel", "a train horn in the distance", "rain falls on a tin roof",
           "a crowd cheers at a stadium"]

TINY_TAR = """
workload: tar
fixed:
  corpus_options: {n_train: 8, n_val: 4, n_test: 6, min_s: 5, max_s: 6}
  epochs: 1
  batch_size: 4
  d: 32
param_space:
  lr_audio: {type: grid, values: [4.0e-6]}
searcher: grid
scheduler: {type: none}
metric: val/t2a/map10
mode: max
"""


def tiny_model(work: Path) -> tuple[str, str]:
    """A tiny TAR sweep (a real fine-tuned trial) in ``work``; its champion and tracking URI."""
    spec = work / "bench_query_tar.yaml"
    spec.write_text(TINY_TAR)
    uri = f"sqlite:///{work}/mlflow.db"
    subprocess.run([sys.executable, "-m", "orchestrator.sweep", str(spec), "--tracking-uri", uri,
                    "--cache-dir", str(work / "cache"), "--storage-path", str(work / "ray_results")],
                   check=True, stdout=subprocess.DEVNULL)
    return "models:/bench_query_tar@champion", uri


def grown_model(model_uri: str, tracking_uri: str, n_items: int, out: Path, seed: int = 0) -> Path:
    """A copy of the model whose text-query side holds ``n_items`` (its own + synthetic unit
    vectors), saved as a local pyfunc model directory."""
    import faiss
    import mlflow
    import pandas as pd

    from orchestrator import retrieval_pyfunc
    from orchestrator.register import save_pyfunc
    from orchestrator.retrieval_model import INDEX_DIR, RETRIEVAL_FILE

    mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(out / "download")))
    src = local / "artifacts" / retrieval_pyfunc.ARTIFACT
    root = out / "retrieval"
    shutil.copytree(src, root)
    meta = json.loads((root / RETRIEVAL_FILE).read_text())
    side = meta["query_sides"]["text"]
    index = faiss.read_index(str(root / INDEX_DIR / f"{side}.faiss"))
    real = index.reconstruct_n(0, index.ntotal)
    rows = pd.read_parquet(root / INDEX_DIR / f"{side}.parquet")
    extra = max(0, n_items - len(real))
    rng = np.random.default_rng(seed)
    synth = rng.standard_normal((extra, real.shape[1])).astype(np.float32)
    synth /= np.linalg.norm(synth, axis=1, keepdims=True)
    grown = faiss.IndexFlatIP(real.shape[1])
    grown.add(np.concatenate([real, synth]))
    faiss.write_index(grown, str(root / INDEX_DIR / f"{side}.faiss"))
    synth_rows = pd.DataFrame({"id": [f"synthetic-{i}" for i in range(extra)]})
    pd.concat([rows, synth_rows], ignore_index=True).to_parquet(root / INDEX_DIR / f"{side}.parquet", index=False)
    meta["sides"][side]["n"] = int(grown.ntotal)
    (root / RETRIEVAL_FILE).write_text(json.dumps(meta, indent=2))
    return save_pyfunc(out / "pyfunc", root, "text")


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


def bench_loaded(model_dir: Path, n: int) -> dict[str, float]:
    """Single-query calls on the model loaded as the CLI loads it."""
    import mlflow

    engine = mlflow.pyfunc.load_model(str(model_dir)).unwrap_python_model().engine
    for q in QUERIES[:3]:  # warm-up: the text encoder is built on first use
        engine.search([q], "text", 10)
    total, enc, search = [], [], []
    for i in range(n):
        engine.search([QUERIES[i % len(QUERIES)]], "text", 10)
        t = engine.last_timings
        total.append(t["total_s"])
        enc.append(t["encoder_s"])
        search.append(t["search_s"])
    return {"n_items": engine.indexes[engine.side_for("text")].ntotal, "p50": pct(total, 50), "p99": pct(total, 99),
            "encoder": sum(enc) / sum(total), "search": sum(search) / sum(total),
            "encoder_p50": pct(enc, 50), "search_p50": pct(search, 50)}


def bench_server(model_dir: Path, n: int, log: Path) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
                                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(1)

        def ask(q: str) -> dict:
            body = json.dumps({"inputs": [q], "params": {"k": 10}}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["predictions"][0]

        for q in QUERIES[:3]:
            ask(q)
        total, enc, search = [], [], []
        for i in range(n):
            t0 = time.perf_counter()
            pred = ask(QUERIES[i % len(QUERIES)])
            total.append(time.perf_counter() - t0)
            enc.append(pred["seconds"]["encoder_s"])
            search.append(pred["seconds"]["search_s"])
        return {"p50": pct(total, 50), "p99": pct(total, 99), "encoder": sum(enc) / sum(total),
                "search": sum(search) / sum(total), "encoder_p50": pct(enc, 50), "search_p50": pct(search, 50)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a registered retrieval model taking text queries (default: train a tiny TAR trial)")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlruns/mlflow.db"))
    p.add_argument("--n-items", type=int, default=10_000)
    p.add_argument("--queries", type=int, default=200, help="timed single-query calls per path")
    p.add_argument("--work-dir", help="where the tiny sweep and the grown model go (default: a temp dir)")
    args = p.parse_args(argv)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-query-"))
    work.mkdir(parents=True, exist_ok=True)
    model, uri = (args.model, args.tracking_uri) if args.model else tiny_model(work)
    model_dir = grown_model(model, uri, args.n_items, work / "grown")
    loaded = bench_loaded(model_dir, args.queries)
    served = bench_server(model_dir, args.queries, work / "serve.log")
    print(f"\nbench_query: {model}, text queries, k=10, index of {loaded['n_items']:,} items "
          f"(head output space), {args.queries} single-query calls per path, {os.cpu_count()} cores")
    print(f"{'path':<26}{'p50 ms':>8}{'p99 ms':>8}{'text encoder':>14}{'index search':>14}{'other':>8}")
    for name, r in (("CLI (loaded pyfunc)", loaded), ("mlflow models serve (HTTP)", served)):
        other = 1.0 - r["encoder"] - r["search"]
        print(f"{name:<26}{r['p50']:>8.2f}{r['p99']:>8.2f}{r['encoder']:>13.1%} {r['search']:>13.1%} {other:>7.1%}")
    print(f"median per query: text encoder {loaded['encoder_p50']:.2f} ms, index search {loaded['search_p50']:.2f} ms "
          "(loaded model); the text encoder's time includes the head's text projection (TAR: both fine-tuned); "
          "other = result metadata and Python overhead, for the server also HTTP and JSON")
    return 0


if __name__ == "__main__":
    sys.exit(main())
