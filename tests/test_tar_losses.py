"""TAR losses (NT-Xent, sigmoid) on hand-computed cases, and the 2-worker gather equivalence:
2 gloo processes with half the batch each + gather_with_grad + DDP must give the single-process
full-batch loss and gradients."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from orchestrator.distributed import gather_no_grad, gather_sequences_with_grad, gather_with_grad
from workloads.tar.losses import (
    SIGMOID_PARAM_LR,
    SigmoidLoss,
    nt_xent,
    nt_xent_from_scores,
    nt_xent_per_positive_from_scores,
    positive_mask,
)
from workloads.tar.tap import TAP

# ---- hand cases --------------------------------------------------------------------------------


def _two_clips_two_captions():
    # audios: a0 = (1, 0), a1 = (0, 1), given unnormalised (scaled 3x, 0.5x) to test the L2 norm
    audio = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    # captions t0, t1 of clip 0 and t2, t3 of clip 1 (unit vectors after normalisation)
    text = torch.tensor([[2.0, 0.0], [0.6, 0.8], [0.0, 1.0], [1.6, 1.2]])
    return audio, text, torch.tensor([0, 1]), torch.tensor([0, 0, 1, 1])


def test_nt_xent_hand_case():
    audio, text, a_ids, t_ids = _two_clips_two_captions()
    # cosine s[text, audio]: t0 (1, 0), t1 (0.6, 0.8), t2 (0, 1), t3 (0.8, 0.6); tau = 0.5 -> l = 2s:
    #   t0 (2, 0), t1 (1.2, 1.6), t2 (0, 2), t3 (1.6, 1.2)
    # text->audio, one positive per text:
    #   t0: -log(e^2 / (e^2 + e^0)) = log(1 + e^-2) = 0.126928;   t1: -log(e^1.2 / (e^1.2 + e^1.6)) = log(1 + e^0.4) = 0.913015
    #   t2 = t0 = 0.126928;  t3 = t1 = 0.913015               -> L_t2a = (2 * 0.126928 + 2 * 0.913015) / 4 = 0.519972
    # audio->text, two positives per audio (its two captions):
    #   a0 column (2, 1.2, 0, 1.6), positives t0, t1: -log((e^2 + e^1.2) / (e^2 + e^1.2 + e^0 + e^1.6))
    #      = -log(10.709173 / 16.662205) = 0.442042;  a1 column (0, 1.6, 2, 1.2) is the same -> L_a2t = 0.442042
    # L = (0.519972 + 0.442042) / 2 = 0.481007
    t2a = (2 * math.log1p(math.exp(-2)) + 2 * math.log1p(math.exp(0.4))) / 4
    e = math.exp
    a2t = -math.log((e(2) + e(1.2)) / (e(2) + e(1.2) + e(0) + e(1.6)))
    expected = 0.5 * (t2a + a2t)
    assert expected == pytest.approx(0.481007, abs=1e-6)
    got = nt_xent(audio, text, a_ids, t_ids, tau=0.5)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_nt_xent_equals_paper_eq_3_2_for_distinct_pairs():
    """One positive per row and column: eq. (3.2), the mean of the two cross-entropies."""
    g = torch.Generator().manual_seed(0)
    audio, text = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    ids = torch.arange(6)
    s = nn.functional.normalize(text, dim=-1) @ nn.functional.normalize(audio, dim=-1).T / 0.05
    eq_3_2 = 0.5 * (nn.functional.cross_entropy(s, ids) + nn.functional.cross_entropy(s.T, ids))
    assert nt_xent(audio, text, ids, ids, tau=0.05).item() == pytest.approx(eq_3_2.item(), abs=1e-5)


def test_nt_xent_multi_positive_duplicate_clip():
    """Clip 7 twice in the batch (audio rows 0 and 2): each of its captions has both copies as
    positives, and each copy has both captions."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(2, 4, generator=g)
    audio = torch.stack([a[0], a[1], a[0] + 0.1])  # copy 2 slightly different (other crop/augmentation)
    text = torch.randn(3, 4, generator=g)
    a_ids, t_ids = torch.tensor([7, 3, 7]), torch.tensor([7, 3, 7])
    tau = 0.2
    pos = positive_mask(a_ids, t_ids)
    assert pos.tolist() == [[True, False, True], [False, True, False], [True, False, True]]
    l = (nn.functional.normalize(text, dim=-1) @ nn.functional.normalize(audio, dim=-1).T / tau).double()
    # direct transcription: -log(sum_pos exp / sum_all exp), per text (rows) and per audio (columns)
    t2a = [-math.log(sum(math.exp(l[i, j]) for j in range(3) if pos[i, j]) / sum(math.exp(l[i, j]) for j in range(3)))
           for i in range(3)]
    a2t = [-math.log(sum(math.exp(l[i, j]) for i in range(3) if pos[i, j]) / sum(math.exp(l[i, j]) for i in range(3)))
           for j in range(3)]
    expected = 0.5 * (sum(t2a) / 3 + sum(a2t) / 3)
    got = nt_xent(audio, text, a_ids, t_ids, tau)
    assert got.item() == pytest.approx(expected, abs=1e-5)
    # with the diagonal-only target, the other copy would be a negative: a strictly larger loss
    diag = nt_xent(audio, text, torch.arange(3), torch.arange(3), tau)
    assert got.item() < diag.item()


def test_nt_xent_symmetry_and_permutation_invariance():
    g = torch.Generator().manual_seed(2)
    audio, text = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    ids = torch.tensor([0, 1, 2, 1, 3])
    loss = nt_xent(audio, text, ids, ids, 0.1)
    # swapping the modalities swaps the two directions: same mean
    assert nt_xent(text, audio, ids, ids, 0.1).item() == pytest.approx(loss.item(), abs=1e-6)
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert nt_xent(audio[perm], text, ids[perm], ids, 0.1).item() == pytest.approx(loss.item(), abs=1e-6)


def _salsa_loss(C: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
    """The thesis' code (salsa training_step) written out: C is [audio, text] in the pair
    layout (one audio per caption), I = same file."""
    I = paths[None, :] == paths[:, None]
    C_audio = torch.log_softmax(C, dim=0)
    C_text = torch.log_softmax(C, dim=1)
    return -0.5 * (C_audio[torch.where(I)].mean() + C_text[torch.where(I)].mean())


def test_nt_xent_per_positive_is_the_thesis_code():
    g = torch.Generator().manual_seed(4)
    tau = 0.05
    # a permutation mask: 5 distinct clips, captions in shuffled order
    s = torch.rand(5, 5, generator=g) * 2 - 1  # [texts, audios]
    text_ids = torch.tensor([3, 0, 4, 1, 2])
    audio_ids = torch.arange(5)
    pair_layout = s[:, text_ids]  # audio of each caption's clip, in caption order
    expected = _salsa_loss(pair_layout.T / tau, text_ids)
    got = nt_xent_per_positive_from_scores(s, audio_ids, text_ids, tau)
    assert got.item() == pytest.approx(expected.item(), abs=1e-5)
    # one positive per row and column: the pooled form is the same number
    assert nt_xent_from_scores(s, audio_ids, text_ids, tau).item() == pytest.approx(expected.item(), abs=1e-5)

    # clip 7 with two captions in the batch: the code scores its audio twice (two equal columns)
    s = torch.rand(4, 3, generator=g) * 2 - 1  # texts (7, 7, 2, 5) vs audios (7, 2, 5)
    text_ids, audio_ids = torch.tensor([7, 7, 2, 5]), torch.tensor([7, 2, 5])
    pair_layout = s[:, torch.tensor([0, 0, 1, 2])]
    expected = _salsa_loss(pair_layout.T / tau, text_ids)
    got = nt_xent_per_positive_from_scores(s, audio_ids, text_ids, tau)
    assert got.item() == pytest.approx(expected.item(), abs=1e-5)
    assert abs(nt_xent_from_scores(s, audio_ids, text_ids, tau).item() - expected.item()) > 1e-2


def test_missing_positive_is_an_error():
    with pytest.raises(ValueError, match="texts without a positive audio"):
        nt_xent(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1]), torch.tensor([0, 5]), 0.1)


def test_sigmoid_init_values_and_param_group():
    loss = SigmoidLoss()
    assert loss.t.item() == 1.0 and loss.b.item() == -10.0
    assert loss.scale.item() == pytest.approx(math.e)
    group = loss.param_group()
    assert group["lr"] == SIGMOID_PARAM_LR == 0.1
    assert {id(p) for p in group["params"]} == {id(loss.t), id(loss.b)}


def test_sigmoid_hand_case():
    audio = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # a0 = (1, 0), a1 = (0, 1)
    text = torch.tensor([[5.0, 0.0], [0.6, 0.8]])  # t0 of clip 0, t1 of clip 1
    # s[text, audio] = t0 (1, 0), t1 (0.6, 0.8);  logits = e^t * s + b = e * s - 10:
    #   t0a0 = -7.281718 (z = +1), t0a1 = -10 (z = -1), t1a0 = -8.369031 (z = -1), t1a1 = -7.825375 (z = +1)
    # -log sigmoid(z * x) = log(1 + exp(-z * x)):
    #   7.282406 + 4.5399e-5 + 2.3191e-4 + 7.825774 = 15.108457; divided by Nt = 2 -> 7.554229
    x = [math.e - 10, -10.0, 0.6 * math.e - 10, 0.8 * math.e - 10]
    z = [1, -1, -1, 1]
    expected = sum(math.log1p(math.exp(-zi * xi)) for zi, xi in zip(z, x)) / 2
    assert expected == pytest.approx(7.554229, abs=1e-6)
    got = SigmoidLoss()(audio, text, torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert got.item() == pytest.approx(expected, abs=1e-5)
    # the thesis code's 1/tau pre-scaling is a separate factor on s
    scaled = SigmoidLoss(input_scale=20.0).from_scores(torch.tensor([[1.0, 0.0], [0.6, 0.8]]) / 20.0,
                                                       torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert scaled.item() == pytest.approx(expected, abs=1e-5)


def test_sigmoid_multi_positive_labels():
    """A duplicated clip's copies are positives (z = +1) for both captions."""
    loss = SigmoidLoss(init_t=0.0, init_b=0.0)  # logits = s
    s = torch.tensor([[0.5, -0.2, 0.3], [0.1, 0.4, -0.3], [0.2, 0.0, 0.6]])
    ids = torch.tensor([4, 9, 4])
    z = torch.tensor([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], dtype=torch.float32)
    expected = -nn.functional.logsigmoid(z * s).sum() / 3
    assert loss.from_scores(s, ids, ids).item() == pytest.approx(expected.item(), abs=1e-6)


def test_gather_is_identity_without_process_group():
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
    ids = torch.tensor([1, 2, 3])
    assert gather_no_grad(ids) is ids
    mask = torch.ones(3, 4, dtype=torch.bool)
    frames = torch.randn(3, 4, 2)
    assert all(a is b for a, b in zip(gather_sequences_with_grad(frames, mask), (frames, mask)))


# ---- 2-process equivalence ---------------------------------------------------------------------

WORLD = 2
SPLITS = {"nt_xent": [3, 3], "sigmoid": [4, 2], "tap": [4, 2]}  # uneven splits exercise the padding path


def _data():
    g = torch.Generator().manual_seed(123)
    n = 6
    return {
        "xa": torch.randn(n, 8, generator=g),
        "xt": torch.randn(n, 8, generator=g),
        "frames": torch.randn(n, 5, 8, generator=g),
        "lengths": torch.tensor([5, 3, 4, 5, 2, 1]),
        # clip 0 is on both ranks (rows 0 and 3): a cross-worker positive; clip 1 likewise (1, 5)
        "ids": torch.tensor([0, 1, 2, 0, 3, 1]),
    }


class _Model(nn.Module):
    """Projection heads + loss parameters, forward = the loss on the gathered (global) batch."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        with torch.random.fork_rng():  # same initial weights in every process, global RNG untouched
            torch.manual_seed(7)
            self.audio_proj = nn.Linear(8, 4)
            self.text_proj = nn.Linear(8, 4)
            self.sigmoid = SigmoidLoss() if kind == "sigmoid" else None
            self.tap = TAP(d_model=4, d_proj=6, dropout=0.0) if kind == "tap" else None

    def forward(self, xa, xt, frames, mask, ids, gather=gather_with_grad):
        ids_all = gather_no_grad(ids)
        text = gather(self.text_proj(xt))
        if self.kind == "tap":  # ranks' frames differ in padded length (see _inputs)
            frames, mask = gather_sequences_with_grad(self.audio_proj(frames), mask)
            scores = self.tap.scores(text, frames, mask)
            return nt_xent_from_scores(scores, ids_all, ids_all, tau=0.1)
        audio = gather(self.audio_proj(xa))
        if self.kind == "sigmoid":
            return self.sigmoid(audio, text, ids_all, ids_all)
        return nt_xent(audio, text, ids_all, ids_all, tau=0.1)


def _inputs(d, rows=slice(None)):
    xa = d["xa"][rows].clone().requires_grad_(True)
    xt = d["xt"][rows].clone().requires_grad_(True)
    t = int(d["lengths"][rows].max())  # each worker pads to its own longest clip: 5 vs 2 frames
    frames = d["frames"][rows][:, :t]
    mask = torch.arange(t)[None, :] < d["lengths"][rows][:, None]
    return xa, xt, frames, mask, d["ids"][rows]


def _gather_replacing_local_slice(x: torch.Tensor) -> torch.Tensor:
    """open_clip's gather_with_grad=False, local_loss=False: only the local copy carries gradient."""
    import torch.distributed as dist

    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        d = _data()
        results = {}
        for kind, sizes in SPLITS.items():
            start = sum(sizes[:rank])
            xa, xt, frames, mask, ids = _inputs(d, slice(start, start + sizes[rank]))
            model = DDP(_Model(kind))
            loss = model(xa, xt, frames, mask, ids)
            loss.backward()
            results[kind] = {
                "loss": loss.detach(),
                "grads": {n: p.grad.clone() for n, p in model.module.named_parameters()},
                "xa_grad": None if xa.grad is None else xa.grad.clone(),
                "xt_grad": xt.grad.clone(),
            }
        # contrast: open_clip's local-slice replacement under the same DDP averaging
        xa, xt, frames, mask, ids = _inputs(d, slice(3 * rank, 3 * rank + 3))
        model = DDP(_Model("sigmoid"))
        model(xa, xt, frames, mask, ids, gather=_gather_replacing_local_slice).backward()
        results["replace_local"] = {n: p.grad.clone() for n, p in model.module.named_parameters()}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_workers_match_single_worker(tmp_path):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    d = _data()
    for kind, sizes in SPLITS.items():
        xa, xt, frames, mask, ids = _inputs(d)
        model = _Model(kind)
        loss = model(xa, xt, frames, mask, ids)  # no process group here: gathers are identities
        loss.backward()
        for r in range(WORLD):
            got = ranks[r][kind]
            # every worker computes the same global loss
            assert got["loss"].item() == pytest.approx(loss.item(), abs=1e-6), kind
            # after DDP averaging, every parameter gradient equals the single-process one
            for name, p in model.named_parameters():
                torch.testing.assert_close(got["grads"][name], p.grad, atol=1e-6, rtol=1e-5, msg=f"{kind} {name}")
            # a worker's input gradient is WORLD x the single-process gradient of its slice
            # (the summing all_gather; DDP's 1/WORLD average turns it into exact parameter gradients)
            rows = slice(sum(sizes[:r]), sum(sizes[: r + 1]))
            torch.testing.assert_close(got["xt_grad"], WORLD * xt.grad[rows], atol=1e-6, rtol=1e-5)
            if xa.grad is not None:
                torch.testing.assert_close(got["xa_grad"], WORLD * xa.grad[rows], atol=1e-6, rtol=1e-5)
    # open_clip's replace-the-local-slice gather: encoder gradients come out 1/WORLD of the
    # single-process ones while the loss' own t, b stay full: the two groups drift apart by WORLD
    xa, xt, frames, mask, ids = _inputs(d)
    ref = _Model("sigmoid")
    ref(xa, xt, frames, mask, ids).backward()
    replaced = ranks[0]["replace_local"]
    torch.testing.assert_close(replaced["audio_proj.weight"], ref.audio_proj.weight.grad / WORLD, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(replaced["sigmoid.t"], ref.sigmoid.t.grad, atol=1e-6, rtol=1e-5)
