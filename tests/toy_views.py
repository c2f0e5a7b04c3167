"""A toy two-view workload (tests only): tone clips seen through a DSP audio encoder and their
captions through the MiniLM text encoder, linked by two linear projections and a symmetric
contrastive loss. Small enough for an end-to-end sweep in a test, real enough to exercise views,
the join, quarantine and evaluation-only sweeps (``fusion_n`` is an inference field).

Sweeps name it ``workload: tests.toy_views:INFO`` (a ``module:ATTR`` workload; Ray workers run in
the repository root, so they import it the same way).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.corpus import CorpusRequest, build_dir, manifest_table, register_corpus, write_manifest
from orchestrator.registry import WorkloadInfo

FREQS = (220, 277, 330, 392, 440, 523, 587, 659, 740, 831, 880, 988)


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_mels: int = Field(24, ge=8)  # the audio view's encoder parameter (a data field)
    clips_per_tone: int = Field(3, ge=1)
    empty_caption: bool = False  # corpus option: one clip gets an empty second caption
    only_empty: bool = False  # ... and no usable caption at all
    dim: int = Field(16, ge=2)
    lr: float = Field(3e-2, gt=0)
    tau: float = Field(0.1, gt=0)
    epochs: int = Field(4, ge=1)
    eval_every: int = Field(1, ge=1)
    batch_size: int = Field(16, ge=2)
    fusion_n: int = Field(1, ge=1)  # inference: a text query is averaged with its top-N audio items
    # failure drills: in this epoch, after its first batch, the trial process dies (``exit``: once,
    # the first time, noted in ``fail_marker``) or the training raises (``raise``: every time,
    # each attempt appends a line to ``fail_marker``)
    fail_at_epoch: int | None = None
    fail_how: str = "exit"
    fail_marker: str = ""
    seed: int = 0


INFO = WorkloadInfo(name="toy_views", config_cls=ToyConfig, regime="frozen",
                    profiles_file=Path(__file__).with_name("toy_views_profiles.yaml"),
                    impl="tests.toy_views:ToyWorkload", data_fields=("n_mels", "clips_per_tone", "empty_caption",
                                                                      "only_empty"),
                    inference_fields=("fusion_n",))


@register_corpus("toy_tones")
def build_toy(req: CorpusRequest) -> Path:
    """Tones at 12 pitches; captions name the pitch in words ("a low tone near 220 hertz")."""
    opts = dict(req.options)
    out = build_dir(req.work_dir / "toy_tones", {"v": 2, **opts})
    manifest = out / "manifest.parquet"
    if manifest.exists():
        return manifest
    rows = []
    for t, f in enumerate(FREQS):
        split = ("train", "train", "train", "train", "train", "train", "val", "val", "val", "test", "test", "test")[t]
        for k in range(int(opts.get("clips_per_tone", 3))):
            rng = np.random.default_rng(100 * t + k)
            sr = 16000
            n = int(sr * (0.4 + 0.1 * k))
            wav = 0.3 * np.sin(2 * np.pi * f * (1 + 0.004 * k) * np.arange(n) / sr) + 0.02 * rng.standard_normal(n)
            path = out / "audio" / f"t{t}_{k}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wav.astype(np.float32), sr, subtype="PCM_16")
            texts = [f"a tone of {f} hertz", f"a {'low' if f < 500 else 'high'} beep number {t}"]
            rows.append({"id": f"t{t:02d}_{k}", "split": split, "audio_path": str(path), "sr": sr, "offset": 0.0,
                         "duration": n / sr, "texts": texts, "label": f"tone{t}"})
    if opts.get("empty_caption"):
        rows[0]["texts"] = [rows[0]["texts"][0], "   "]
    if opts.get("only_empty"):
        rows[1]["texts"] = [""]
    return write_manifest(manifest_table(rows), manifest)


# -- the implementation (imported by trials, not by the CLI's validation) ------------------------


@dataclass
class ToyData:
    ids: list[str]
    audio: np.ndarray  # [N, Da]
    text: np.ndarray  # [N, Dt]: mean of each item's caption embeddings

    def __len__(self) -> int:
        return len(self.ids)


def _workload_cls() -> type:
    import torch
    import torch.nn.functional as F

    from orchestrator import retrieval
    from orchestrator.workload import DataSpec, ViewSpec, Workload

    class Net(torch.nn.Module):
        def __init__(self, da: int, dt: int, d: int) -> None:
            super().__init__()
            self.a, self.t = torch.nn.Linear(da, d), torch.nn.Linear(dt, d)

        def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"a": F.normalize(self.a(batch["audio"]), dim=-1), "t": F.normalize(self.t(batch["text"]), dim=-1)}

    class ToyWorkload(Workload):
        info = INFO

        def data_spec(self, cfg: ToyConfig, profile: str) -> DataSpec:
            opts = {"clips_per_tone": cfg.clips_per_tone, "empty_caption": cfg.empty_caption,
                    "only_empty": cfg.only_empty}
            return DataSpec("toy_tones", corpus_options=opts, views={
                "audio": ViewSpec("audio", "logmel_stats", {"n_mels": cfg.n_mels}),
                "text": ViewSpec("text", "minilm"),
            })

        def to_data(self, table: Any) -> ToyData:
            audio = np.asarray(table.column("audio").to_pylist(), np.float32)
            text = np.asarray([np.mean(np.asarray(v, np.float32), axis=0) for v in table.column("text").to_pylist()],
                              np.float32)
            return ToyData(table.column("id").to_pylist(), audio, text)

        def input_dim(self, data: ToyData) -> int:
            return int(data.audio.shape[1])

        def build_model(self, cfg: ToyConfig, in_dim: int) -> torch.nn.Module:
            torch.manual_seed(cfg.seed)
            return Net(in_dim, 384, cfg.dim)

        def configure_optimizer(self, model: torch.nn.Module, cfg: ToyConfig, train: ToyData) -> tuple[Any, None]:
            return torch.optim.Adam(model.parameters(), lr=cfg.lr), None

        def epochs(self, cfg: ToyConfig) -> int:
            return cfg.epochs

        def eval_every(self, cfg: ToyConfig) -> int:
            return cfg.eval_every

        def train_batches(self, train: ToyData, cfg: ToyConfig, epoch: int,
                          rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
            order = rng.permutation(len(train))
            for s in range(0, len(order), cfg.batch_size):
                if s and epoch == cfg.fail_at_epoch:
                    self._fail(cfg, epoch)
                idx = order[s:s + cfg.batch_size]
                yield {"audio": torch.from_numpy(train.audio[idx]), "text": torch.from_numpy(train.text[idx])}

        def _fail(self, cfg: ToyConfig, epoch: int) -> None:
            import os

            marker = Path(cfg.fail_marker)
            if cfg.fail_how == "raise":
                with marker.open("a") as f:
                    f.write("attempt\n")
                raise RuntimeError(f"toy failure at epoch {epoch}")
            if not marker.exists():
                marker.write_text(f"died at epoch {epoch}\n")
                os._exit(3)  # the process is gone, as under the OOM killer or with its node

        def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: ToyConfig,
                 epoch: int) -> torch.Tensor:
            logits = outputs["t"] @ outputs["a"].T / cfg.tau
            target = torch.arange(len(logits))
            return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

        def _t2a(self, model: torch.nn.Module, data: ToyData, cfg: ToyConfig) -> dict[str, float]:
            with torch.no_grad():
                out = model({"audio": torch.from_numpy(data.audio), "text": torch.from_numpy(data.text)})
            a, t = out["a"].numpy(), out["t"].numpy()
            top = np.argsort(-(t @ a.T), axis=1, kind="stable")[:, :cfg.fusion_n]
            fused = retrieval.l2_normalize(t + a[top].mean(axis=1))
            ranks = retrieval.single_relevant_ranks(fused, a, np.arange(len(a)))
            return retrieval.single_relevant_metrics(ranks)

        def validate(self, model: torch.nn.Module, val: ToyData, cfg: ToyConfig) -> dict[str, float]:
            m = self._t2a(model, val, cfg)
            return {"val/t2a/mrr": m["mrr"], "val/t2a/r1": m["r1"]}

        def evaluate(self, model: torch.nn.Module, test: ToyData, cfg: ToyConfig,
                     figures: bool = True) -> tuple[dict, dict, dict]:
            import pandas as pd

            m = self._t2a(model, test, cfg)
            metrics = {f"test/t2a/{k}": v for k, v in m.items()}
            return metrics, {"toy": pd.DataFrame({"Metric": ["MRR", "R@1"], "t2a": [m["mrr"], m["r1"]]})}, {}

        def headline_metrics(self) -> list[str]:
            return ["test/t2a/mrr", "test/t2a/r1"]

    return ToyWorkload


def __getattr__(name: str) -> Any:  # ToyWorkload is built lazily: importing INFO stays light
    if name == "ToyWorkload":
        return _workload_cls()
    raise AttributeError(name)
