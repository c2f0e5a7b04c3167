"""Text-to-audio retrieval with fine-tuned dual encoders (the ATST/TAP thesis, on salsa), as a recipe.

config -> data (clips' log-mel features cached once; 5 captions per clip, lowercased, punctuation
removed, 32 tokens) -> model (audio encoder + text encoder, linear projections to D = 1024, mean
pooling or Text-Aware Attention Pooling; 3.1, 3.6) -> loss (symmetric multi-positive NT-Xent with
tau = 0.05, or the sigmoid loss with learnable t, b; 3.5) -> optimisation (AdamW, parameter groups
with their own learning rates, one warm-up epoch, cosine decay of every group to 1e-7 per batch;
3.9) -> validation (text->audio mAP@10 each epoch) -> evaluation (DCASE metrics of the best and
the last epoch, Tables 4.1-4.3).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator import retrieval
from orchestrator.distributed import gather_no_grad, gather_sequences_with_grad, gather_with_grad
from orchestrator.encoders.base import AudioEncoder, build_encoder
from orchestrator.encoders.text import TextEncoder
from orchestrator.workload import DataSpec, ViewSpec, Workload
from workloads.tar import INFO, clotho, corpus_local  # noqa: F401  (register the corpora)
from workloads.tar.config import TarConfig
from workloads.tar.losses import SigmoidLoss, nt_xent_from_scores, nt_xent_per_positive_from_scores
from workloads.tar.tap import TAP
from workloads.tar.text import preprocess_caption


@dataclass
class TarData:
    """One split: each clip's cached log-mel features and its (preprocessed) captions."""

    ids: list[str]
    feats: list[np.ndarray]  # [n_mels, T] float32
    texts: list[list[str]]

    def __len__(self) -> int:
        return len(self.ids)


def audio_encoder_params(cfg: TarConfig) -> dict[str, Any]:
    """The audio encoder's constructor arguments: ``audio_encoder_params`` plus ``atst_db_clamp``
    for ATST-Frame (the same for the cached features and the model that fine-tunes on them)."""
    params = dict(cfg.audio_encoder_params)
    if cfg.audio_encoder == "atst_frame" and cfg.atst_db_clamp is not None:
        params["db_clamp"] = list(cfg.atst_db_clamp)
    return params


def _world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


class DualEncoder(nn.Module):
    """Audio encoder -> frames -> projection; text encoder -> projection; mean pooling or TAP."""

    def __init__(self, cfg: TarConfig):
        super().__init__()
        self.audio: AudioEncoder = build_encoder(cfg.audio_encoder, **audio_encoder_params(cfg))
        self.audio_net = self.audio.model  # registered, so it trains, syncs (DDP) and checkpoints
        self.text = TextEncoder(cfg.text_encoder, pooling=cfg.text_pooling, max_tokens=cfg.max_tokens)
        self.audio_proj = nn.Linear(self.audio.dim, cfg.d)
        self.text_proj = nn.Linear(self.text.dim, cfg.d)
        self.tap = TAP(cfg.d, cfg.tap_dim, cfg.tap_dropout) if cfg.pooling == "tap" else None
        self.sigmoid = (SigmoidLoss(cfg.sigmoid_t, cfg.sigmoid_b, input_scale=cfg.sigmoid_input_scale)
                        if cfg.loss == "sigmoid" else None)
        self.tau = cfg.tau
        self.nt_xent = nt_xent_per_positive_from_scores if cfg.ntxent_positives == "per_positive" else nt_xent_from_scores

    def encode_audio(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected frames ``[B, T, d]`` and their mask ``[B, T]`` (True = real frame)."""
        self.audio.device = self.audio_proj.weight.device  # follow the module when Train moves it
        frames = self.audio.forward_features(feats)
        lengths = torch.tensor([f.shape[0] for f in frames], device=frames[0].device)
        padded = nn.utils.rnn.pad_sequence(frames, batch_first=True)
        mask = torch.arange(padded.shape[1], device=padded.device)[None, :] < lengths[:, None]
        return self.audio_proj(padded), mask

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.text_proj(self.text(texts))

    @staticmethod
    def mean_pool(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(frames.dtype)
        return (frames * m).sum(1) / m.sum(1).clamp(min=1.0)

    def scores(self, text: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor, chunk: int | None = None
               ) -> torch.Tensor:
        """``[Nt, Na]`` cosine scores: text vs mean-pooled audio, or vs its text-aware pooling."""
        if self.tap is None:
            return F.normalize(text, dim=-1) @ F.normalize(self.mean_pool(frames, mask), dim=-1).T
        if chunk:
            return self.tap.scores_chunked(text, frames, mask, chunk=chunk)
        return self.tap.scores(text, frames, mask)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Scores the batch and computes the loss here, not in ``Workload.loss``: TAP and the
        sigmoid loss' t and b are parameters of this module, and DDP only synchronises what
        ``forward`` uses."""
        frames, mask = self.encode_audio(batch["feats"])
        text = self.encode_text(batch["texts"])
        audio_ids, text_ids = batch["audio_ids"].to(text.device), batch["text_audio_ids"].to(text.device)
        # gather across Train workers: the loss sees the global batch, whatever the worker count
        audio_ids, text_ids, text = _global_ids(audio_ids), _global_ids(text_ids), gather_with_grad(text)
        if self.tap is None:
            audio = gather_with_grad(self.mean_pool(frames, mask))
            scores = F.normalize(text, dim=-1) @ F.normalize(audio, dim=-1).T
        else:  # TAP scores every (text, clip) pair from the clip's frames: gather the frames
            scores = self.tap.scores(text, *gather_sequences_with_grad(frames, mask))
        if self.sigmoid is not None:
            loss = self.sigmoid.from_scores(scores, audio_ids, text_ids)
        else:
            loss = self.nt_xent(scores, audio_ids, text_ids, self.tau)
        return {"loss": loss, "scores": scores}


def warmup_cosine(step: int, warmup: int, total: int, floor: float) -> float:
    """LR factor: linear warm-up over ``warmup`` steps, then cosine from 1 down to ``floor``
    (a group decaying to the absolute ``lr_min`` uses ``floor = lr_min / its own LR``)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class TarWorkload(Workload):
    info = INFO

    def __init__(self) -> None:
        # the untrained model's test metrics, per (config, split): the best and the last epoch
        # are evaluated by one instance, and the zero-shot pass is the same for both
        self._zero_shot: dict[tuple[str, int], dict[str, float]] = {}

    # -- data --------------------------------------------------------------------------------
    def data_spec(self, cfg: TarConfig, profile: str) -> DataSpec:
        corpus = "tar_local" if profile == "local" else "tar_clotho"
        # one view: the clips' encoder input features (the encoder trains, so it runs in the trial);
        # captions are read raw from the manifest, since the text encoder trains too
        audio = ViewSpec("audio", cfg.audio_encoder, audio_encoder_params(cfg), level="features")
        return DataSpec(corpus=corpus, corpus_options=dict(cfg.corpus_options), views={"audio": audio})

    def to_data(self, table: pa.Table) -> TarData:
        rows = table.select(["id", "audio.features", "audio.n_mels", "audio.n_frames", "texts"]).to_pylist()
        return TarData(
            ids=[r["id"] for r in rows],
            feats=[np.asarray(r["audio.features"], np.float32).reshape(r["audio.n_mels"], r["audio.n_frames"])
                   for r in rows],
            texts=[[preprocess_caption(t) for t in r["texts"]] for r in rows],
        )

    def input_dim(self, data: TarData) -> int:
        return int(data.feats[0].shape[0])

    # -- model -------------------------------------------------------------------------------
    def build_model(self, cfg: TarConfig, in_dim: int) -> DualEncoder:
        torch.manual_seed(cfg.seed)  # projections/TAP start the same for a seed (and the zero-shot baseline)
        return DualEncoder(cfg)

    def configure_optimizer(self, model: nn.Module, cfg: TarConfig, train: TarData
                            ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        m: DualEncoder = model.module if hasattr(model, "module") else model  # type: ignore[assignment]
        groups = [
            {"name": "audio_encoder", "params": list(m.audio_net.parameters()), "lr": cfg.lr_audio},
            {"name": "text_encoder", "params": list(m.text.parameters()), "lr": cfg.lr_text},
            {"name": "audio_projection", "params": list(m.audio_proj.parameters()), "lr": cfg.lr},
            {"name": "text_projection", "params": list(m.text_proj.parameters()), "lr": cfg.lr},
        ]
        if m.tap is not None:
            groups.append({"name": "tap", "params": list(m.tap.parameters()), "lr": cfg.lr})
        if m.sigmoid is not None:
            groups.append({"name": "loss", "params": list(m.sigmoid.parameters()), "lr": cfg.lr_loss})
        opt = torch.optim.AdamW(groups, betas=cfg.betas, weight_decay=cfg.weight_decay)
        steps = math.ceil(len(train) * cfg.captions_per_clip / self.local_batch_size(cfg))
        warmup, total = int(round(cfg.warmup_epochs * steps)), steps * cfg.epochs
        # every group ends at the absolute lr_min, as the thesis' code decays each group (its
        # update_lr); one shared factor would leave the encoder at 4e-6 * 1e-7 / 2e-5 = 2e-8
        factors = [lambda s, floor=cfg.lr_min / g["lr"]: warmup_cosine(s, warmup, total, floor) for g in groups]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factors)
        return opt, sched

    @staticmethod
    def local_batch_size(cfg: TarConfig) -> int:
        """This worker's share of the global ``batch_size`` (the loss gathers all workers')."""
        world = _world_size()
        if cfg.batch_size % world:
            raise ValueError(f"batch_size {cfg.batch_size} (global) must be divisible by the {world} Train workers")
        return cfg.batch_size // world

    def epochs(self, cfg: TarConfig) -> int:
        return cfg.epochs

    def eval_every(self, cfg: TarConfig) -> int:
        return cfg.eval_every

    # -- training data: (clip, caption) pairs, shuffled each epoch ---------------------------
    def train_batches(self, train: TarData, cfg: TarConfig, epoch: int,
                      rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        pairs = [(i, c) for i in range(len(train))
                 for c in rng.permutation(len(train.texts[i]))[: cfg.captions_per_clip]]
        order = rng.permutation(len(pairs))
        batch = self.local_batch_size(cfg)  # Ray Train gives every worker as many clips (equal split)
        for s in range(0, len(order), batch):
            chosen = [pairs[k] for k in order[s:s + batch]]
            clips = sorted({i for i, _ in chosen})
            yield {
                "feats": [torch.from_numpy(train.feats[i]) for i in clips],
                "audio_ids": torch.tensor(clips),
                "texts": [train.texts[i][c] for i, c in chosen],
                "text_audio_ids": torch.tensor([i for i, _ in chosen]),
            }

    # -- loss (computed in DualEncoder.forward) ---------------------------------------------
    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any], cfg: TarConfig,
             epoch: int) -> torch.Tensor:
        return outputs["loss"]

    # -- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def clip_frames(self, model: DualEncoder, feats: list[np.ndarray], chunk: int = 8
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected frames ``[N, T, d]`` of clips (their cached features) and their mask, ``chunk``
        clips per encoder pass: what evaluation scores and the retrieval index holds."""
        model.eval()
        device = next(model.parameters()).device
        frames, masks = [], []
        for s in range(0, len(feats), chunk):
            f, m = model.encode_audio([torch.from_numpy(x).to(device) for x in feats[s:s + chunk]])
            frames.append(f)
            masks.append(m)
        t_max = max(f.shape[1] for f in frames)
        frames_t = torch.cat([F.pad(f, (0, 0, 0, t_max - f.shape[1])) for f in frames])
        mask_t = torch.cat([F.pad(m, (0, t_max - m.shape[1])) for m in masks])
        return frames_t, mask_t

    @torch.no_grad()
    def caption_vectors(self, model: DualEncoder, texts: list[str], chunk: int = 64) -> torch.Tensor:
        """Projected (preprocessed) captions ``[N, d]``, ``chunk`` per text-encoder pass."""
        model.eval()
        return torch.cat([model.encode_text(texts[s:s + chunk]) for s in range(0, len(texts), chunk)])

    @torch.no_grad()
    def score_split(self, model: DualEncoder, data: TarData, chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """``[n_captions, n_clips]`` scores and each caption's clip index (all 5 captions)."""
        frames_t, mask_t = self.clip_frames(model, data.feats, chunk)
        captions = [(i, t) for i, ts in enumerate(data.texts) for t in ts]
        text = self.caption_vectors(model, [t for _, t in captions])
        scores = model.scores(text, frames_t, mask_t, chunk=64)
        return scores.float().cpu().numpy(), np.array([i for i, _ in captions])

    # -- a retrieval model (orchestrator.retrieval_model): text -> clips, clip -> captions ----
    query_sides = {"text": "audio", "audio": "text"}

    def index_sides(self, model: nn.Module, data: TarData, cfg: TarConfig) -> dict[str, Any]:
        """Clips (mean-pooled projected frames) and captions (projected), L2-normalised: their
        inner product is ``DualEncoder.scores`` with mean pooling, what evaluation ranks by."""
        from orchestrator.retrieval_model import IndexSide

        m: DualEncoder = model  # type: ignore[assignment]
        if m.tap is not None:
            raise ValueError("a TAP model scores every (caption, clip) pair from the clip's frames: there is no "
                             "vector per clip to index (only pooling=mean models can be registered)")
        frames, mask = self.clip_frames(m, data.feats)
        audio = F.normalize(m.mean_pool(frames, mask), dim=-1).float().cpu().numpy()
        captions = [(i, t) for i, ts in enumerate(data.texts) for t in ts]
        text = F.normalize(self.caption_vectors(m, [t for _, t in captions]), dim=-1).float().cpu().numpy()
        clip_rows = [{"id": cid, "item": cid, "caption": ts[0] if ts else ""} for cid, ts in zip(data.ids, data.texts)]
        caption_rows = [{"id": f"{data.ids[i]}#{j}", "item": data.ids[i], "caption": t}
                        for i, ts in enumerate(data.texts) for j, t in enumerate(ts)]  # the order of captions
        return {"audio": IndexSide(audio, clip_rows, "clips"), "text": IndexSide(text, caption_rows, "captions")}

    def embed_queries(self, model: nn.Module, cfg: TarConfig, modality: str, queries: list[Any],
                      encoders: Any) -> np.ndarray:
        """A text is preprocessed as captions are (:func:`preprocess_caption`) and goes through the
        fine-tuned text encoder and projection; an audio query through the fine-tuned audio
        encoder's features, frames, projection and mean pooling."""
        m: DualEncoder = model  # type: ignore[assignment]
        if modality == "text":
            with encoders.timer("text encoder"):
                v = self.caption_vectors(m, [preprocess_caption(str(q)) for q in queries])
            return F.normalize(v, dim=-1).float().cpu().numpy()
        feats = [m.audio.features(q.at(m.audio.sample_rate)).cpu().numpy().astype(np.float32) for q in queries]
        with encoders.timer("audio encoder"):
            frames, mask = self.clip_frames(m, feats)
        return F.normalize(m.mean_pool(frames, mask), dim=-1).float().cpu().numpy()

    def retrieval_metrics(self, model: DualEncoder, data: TarData) -> dict[str, float]:
        scores, clip_of = self.score_split(model, data)
        t2a = retrieval.single_relevant_metrics(retrieval.ranks_from_scores(scores, clip_of))
        return {**{f"t2a/{k}": v for k, v in t2a.items()}, **audio_to_text_metrics(scores, clip_of)}

    def validate(self, model: nn.Module, val: TarData, cfg: TarConfig) -> dict[str, float]:
        m = self.retrieval_metrics(model, val)  # type: ignore[arg-type]
        return {"val/t2a/map10": m["t2a/map10"], "val/t2a/r1": m["t2a/r1"], "val/a2t/r1": m["a2t/r1"]}

    def evaluate(self, model: nn.Module, test: TarData, cfg: TarConfig, figures: bool = True
                 ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
        trained = self.retrieval_metrics(model, test)  # type: ignore[arg-type]
        key = (cfg.model_dump_json(), id(test))
        if key not in self._zero_shot:
            self._zero_shot[key] = self.retrieval_metrics(self.build_model(cfg, self.input_dim(test)), test)
        zero_shot = self._zero_shot[key]
        metrics = {f"test/{k}": v for k, v in trained.items()}
        metrics.update({f"test/zeroshot/{k}": v for k, v in zero_shot.items() if k.startswith("t2a/")})
        rows = [("R@1", "r1"), ("R@5", "r5"), ("R@10", "r10"), ("mAP@10", "map10")]
        table = pd.DataFrame({
            "Metric": [name for name, _ in rows],
            "text->audio": [trained[f"t2a/{k}"] for _, k in rows],
            "audio->text": [trained[f"a2t/{k}"] for _, k in rows],
            "text->audio (untrained)": [zero_shot[f"t2a/{k}"] for _, k in rows],
        })
        return metrics, {"tar_results": table}, {}

    def headline_metrics(self) -> list[str]:
        return ["test/t2a/r1", "test/t2a/r5", "test/t2a/r10", "test/t2a/map10", "test/a2t/r1",
                "test/zeroshot/t2a/map10"]

    def table_groups(self) -> list[str]:
        return ["tar_results"]


def audio_to_text_metrics(scores: np.ndarray, clip_of: np.ndarray, k: int = 10) -> dict[str, float]:
    """Audio->text metrics from ``[n_captions, n_clips]`` scores, each clip querying all captions.

    R@k, MRR, mean/median rank use the clip's best-ranked caption ("any of its captions in the
    top k"); ``mrr10`` is 1/(that rank) if it is <= 10 else 0. ``map10`` is the usual AP@10 with
    *all* the clip's captions relevant (thesis 3.8: (1/R_q) sum_{k<=10} P(k) rel(k), R_q = its 5
    captions; DESIGN's min(R_q, K) divisor, the same when R_q <= 10).
    """
    n_captions, n_clips = scores.shape
    order = np.argsort(-scores.T, axis=1, kind="stable")  # [clips, captions], same tie rule as t2a
    caption_ranks = np.empty((n_clips, n_captions), dtype=np.int64)
    np.put_along_axis(caption_ranks, order, np.arange(1, n_captions + 1)[None, :], axis=1)
    relevant = clip_of[None, :] == np.arange(n_clips)[:, None]  # [clips, captions]
    best = np.where(relevant, caption_ranks, n_captions + 1).min(axis=1)
    out = retrieval.single_relevant_metrics(best)
    out["mrr10"] = out.pop("map10")  # DCASE's single-relevant "mAP@10" on the best caption
    rel_sorted = np.take_along_axis(relevant, order, axis=1)[:, :k]  # rel(j) at ranks 1..k
    hits = np.cumsum(rel_sorted, axis=1)
    precision_sum = (rel_sorted * hits / np.arange(1, rel_sorted.shape[1] + 1)[None, :]).sum(axis=1)
    n_rel = relevant.sum(axis=1)
    out["map10"] = float(np.mean(precision_sum / np.maximum(np.minimum(n_rel, k), 1)))
    return {f"a2t/{name}": v for name, v in out.items()}


def _global_ids(ids: torch.Tensor) -> torch.Tensor:
    """Clip ids are worker-local indices; offset them by rank so they stay distinct when gathered."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return ids
    rank = torch.distributed.get_rank()
    return gather_no_grad(ids + rank * 10_000_000)
