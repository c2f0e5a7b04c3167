"""Text-Aware Attention Pooling: shapes, padding mask, batch independence, the thesis' formula,
and chunked evaluation scores."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workloads.tar.tap import TAP

D, DP, T = 16, 24, 9


@pytest.fixture
def tap() -> TAP:
    torch.manual_seed(0)
    module = TAP(d_model=D, d_proj=DP, dropout=0.05)
    with torch.no_grad():  # non-trivial LayerNorm affine, so a wrong norm placement shows
        module.norm.weight.uniform_(0.5, 1.5)
        module.norm.bias.normal_(0, 0.1)
    return module.eval()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    text = torch.randn(5, D, generator=g)
    frames = torch.randn(4, T, D, generator=g)
    lengths = torch.tensor([9, 4, 1, 6])
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return text, frames, mask, lengths


def test_shapes(tap, batch):
    text, frames, mask, _ = batch
    assert tap(text, frames, mask).shape == (5, 4, D)
    scores = tap.scores(text, frames, mask)
    assert scores.shape == (5, 4)
    assert scores.abs().max() <= 1 + 1e-6  # cosine


def test_padded_frames_do_not_matter(tap, batch):
    text, frames, mask, _ = batch
    ref = tap(text, frames, mask)
    garbage = frames.clone()
    garbage[~mask] = 1e3 * torch.randn(int((~mask).sum()), D)
    torch.testing.assert_close(tap(text, garbage, mask), ref)


def test_batched_equals_one_by_one(tap, batch):
    """Each (text, clip) result depends only on that text and that clip's own real frames."""
    text, frames, mask, lengths = batch
    out = tap(text, frames, mask)
    for i in range(text.shape[0]):
        for j in range(frames.shape[0]):
            n = int(lengths[j])
            alone = tap(text[i : i + 1], frames[j : j + 1, :n], torch.ones(1, n, dtype=torch.bool))
            torch.testing.assert_close(alone[0, 0], out[i, j], atol=1e-5, rtol=1e-5)


def test_matches_thesis_formula(tap, batch):
    """z = LN(softmax(Q K^T / sqrt(D_p)) V W_O) with Q = LN(c_t) W_q, K = LN(c_a) W_k, V = LN(c_a) W_v."""
    text, frames, mask, lengths = batch
    out = tap(text, frames, mask)
    ln = tap.norm
    for j in range(frames.shape[0]):
        c_a = frames[j, : int(lengths[j])]
        k, v = tap.w_k(ln(c_a)), tap.w_v(ln(c_a))
        for i in range(text.shape[0]):
            q = tap.w_q(ln(text[i : i + 1]))
            att = torch.softmax(q @ k.T / math.sqrt(DP), dim=-1) @ v
            z = ln(tap.w_o(att))[0]
            torch.testing.assert_close(out[i, j], z, atol=1e-5, rtol=1e-5)
            score = F.cosine_similarity(text[i], z, dim=0)
            torch.testing.assert_close(tap.scores(text, frames, mask)[i, j], score, atol=1e-5, rtol=1e-5)


def test_chunked_scores_equal_unchunked(tap, batch):
    text, frames, mask, _ = batch
    ref = tap.scores(text, frames, mask)
    for chunk, audio_chunk in [(1, 1), (2, 3), (5, 4), (64, 64)]:
        got = tap.scores_chunked(text, frames, mask, chunk=chunk, audio_chunk=audio_chunk)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_chunked_refuses_training_mode_with_dropout(tap, batch):
    text, frames, mask, _ = batch
    tap.train()
    with pytest.raises(ValueError, match="eval"):
        tap.scores_chunked(text, frames, mask)


def test_dropout_only_in_training(tap, batch):
    text, frames, mask, _ = batch
    torch.testing.assert_close(tap(text, frames, mask), tap(text, frames, mask))
    tap.train()
    torch.manual_seed(3)
    a = tap(text, frames, mask)
    torch.manual_seed(4)
    assert not torch.allclose(a, tap(text, frames, mask))


def test_clip_without_frames_is_an_error(tap, batch):
    text, frames, mask, _ = batch
    mask = mask.clone()
    mask[2] = False
    with pytest.raises(ValueError, match="without any real frame"):
        tap(text, frames, mask)


def test_gradients_reach_every_parameter(tap, batch):
    text, frames, mask, _ = batch
    tap.train()
    tap.scores(text, frames, mask).sum().backward()
    for name, p in tap.named_parameters():
        if name == "w_k.bias":  # q . b_k is constant over a clip's frames: softmax removes it
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
