"""The unlinked baseline B00 (section III-B): no training; text embeddings aligned to the speaker
embedding size by linear discriminant analysis fitted on the training speakers, then the same
cosine search and fusion as the linked systems.

Nothing links the two spaces, so B00 measures what frozen encoders give without a link: the
floor every linked system has to clear. The LDA is fitted once (``fit``, the workload's
``fit_closed_form``) with all its components and stored as buffers, so the checkpoint holds it
and the LDA dimension stays an inference field: fewer dimensions are the leading columns of the
same fit (scikit-learn's SVD solver orders them by discriminant power, and its ``transform`` with
``n_components=d`` is exactly that truncation).

An LDA over S speakers has at most S - 1 components. When the speaker embedding is wider than
that (the local profile: GE2E's 256 dims, 160 training speakers), the text side cannot reach the
speaker size; the speaker embeddings are then reduced to the same dimension by their own LDA on
the training utterances, so both sides still meet in one size for the cosine search. With the
paper's numbers (ECAPA 192-d, 1,211 speakers) the speaker side stays raw, as the paper has it.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from torch import nn

from orchestrator import retrieval


class UnlinkedLDA(nn.Module):
    def __init__(self, speaker_dim: int, text_dim: int, n_speakers: int) -> None:
        super().__init__()
        k = max(1, n_speakers - 1)
        self.speaker_dim, self.text_dim = speaker_dim, text_dim
        for side, dim in (("text", text_dim), ("speaker", speaker_dim)):
            self.register_buffer(f"{side}_mean", torch.zeros(dim))
            self.register_buffer(f"{side}_scalings", torch.zeros(dim, min(k, dim)))
            self.register_buffer(f"{side}_rank", torch.zeros((), dtype=torch.long))

    def fit(self, speaker_x: np.ndarray, labels: np.ndarray, text_x: np.ndarray, text_labels: np.ndarray) -> None:
        for side, x, y in (("text", text_x, text_labels), ("speaker", speaker_x, labels)):
            if len(np.unique(y)) < 2:
                raise ValueError(f"B00: LDA on the {side} embeddings needs at least 2 training speakers")
            lda = LinearDiscriminantAnalysis(solver="svd").fit(x.astype(np.float64), y)
            scalings = getattr(self, f"{side}_scalings")
            rank = min(lda.scalings_.shape[1], scalings.shape[1])
            scalings.zero_()
            scalings[:, :rank] = torch.from_numpy(lda.scalings_[:, :rank]).float()
            getattr(self, f"{side}_mean").copy_(torch.from_numpy(lda.xbar_).float())
            getattr(self, f"{side}_rank").fill_(rank)

    def dims(self, lda_dim: int | None) -> int:
        """The search dimension: ``lda_dim``, or the speaker embedding size capped by the text LDA."""
        text_rank = int(self.text_rank)
        d = lda_dim if lda_dim is not None else min(self.speaker_dim, text_rank)
        if d > text_rank:
            raise ValueError(f"B00: lda_dim={d} exceeds the {text_rank} LDA components the text side has "
                             "(at most training speakers - 1)")
        if d != self.speaker_dim and d > int(self.speaker_rank):
            raise ValueError(f"B00: lda_dim={d} is neither the speaker embedding size ({self.speaker_dim}) "
                             f"nor within its {int(self.speaker_rank)} LDA components")
        return d

    def _project(self, side: str, x: np.ndarray, d: int) -> np.ndarray:
        mean = getattr(self, f"{side}_mean").cpu().numpy()
        scalings = getattr(self, f"{side}_scalings").cpu().numpy()[:, :d]
        return (x - mean) @ scalings

    @torch.no_grad()
    def search_space(self, speaker_x: np.ndarray, text_x: np.ndarray, cfg: object) -> tuple[np.ndarray, np.ndarray]:
        """(speaker, text) embeddings in one d-dimensional space, L2-normalised for cosine search."""
        d = self.dims(getattr(cfg, "lda_dim", None))
        s = speaker_x if d == self.speaker_dim else self._project("speaker", speaker_x, d)
        return retrieval.l2_normalize(s), retrieval.l2_normalize(self._project("text", text_x, d))
