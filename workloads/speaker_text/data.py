"""One split of a speaker-text corpus as the linking network sees it, and the training batches.

The joined table has one row per utterance: the audio view's pooled embedding and the text view's
embeddings of the speaker's descriptions (the same list on every utterance of a speaker). Here the
descriptions become items of their own, one per distinct (speaker, description): the text side of
both retrieval directions is the set of descriptions, not the utterances' copies of it. Two
speakers with the same description string (VoxCeleb1: "A male speaker from the USA") keep one item
each, so every text item has exactly one speaker label, which the ranking metrics need.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import torch


@dataclass
class SpeakerTextData:
    """Utterances (speaker side) and distinct descriptions (text side) of one split.

    ``labels`` / ``text_labels`` index ``speakers`` (sorted speaker ids of this split). After
    :func:`shard`, ``n_speakers_total`` / ``n_total`` still count the whole split (the AAM
    classifier's size must agree on every training worker, and so must the number of batches).
    """

    ids: list[str]
    speakers: list[str]
    labels: np.ndarray  # [N_utt] int64
    speaker_x: np.ndarray  # [N_utt, Ds] float32
    texts: list[str]
    text_labels: np.ndarray  # [N_txt] int64
    text_x: np.ndarray  # [N_txt, Dt] float32
    n_speakers_total: int = 0
    n_total: int = 0  # utterances of the whole split
    world_size: int = 1
    texts_of: list[np.ndarray] = field(default_factory=list)  # speaker label -> its text item indices

    def __post_init__(self) -> None:
        if not self.n_speakers_total:
            self.n_speakers_total = len(self.speakers)
        if not self.n_total:
            self.n_total = len(self.ids)
        if not self.texts_of:
            order = np.argsort(self.text_labels, kind="stable")
            bounds = np.searchsorted(self.text_labels[order], np.arange(len(self.speakers) + 1))
            self.texts_of = [order[bounds[i]:bounds[i + 1]] for i in range(len(self.speakers))]

    def __len__(self) -> int:
        return len(self.ids)


def from_table(table: pa.Table, audio_view: str = "audio", text_view: str = "text") -> SpeakerTextData:
    """A joined split table (``orchestrator.views.read_joined``) -> :class:`SpeakerTextData`."""
    ids = table.column("id").to_pylist()
    spk_of = [str(s) for s in table.column("label").to_pylist()]
    speakers = sorted(set(spk_of))
    index = {s: i for i, s in enumerate(speakers)}
    col = table.column(audio_view).combine_chunks()
    speaker_x = col.flatten().to_numpy(zero_copy_only=False).reshape(len(ids), col.type.list_size).astype(np.float32)

    texts: list[str] = []
    text_labels: list[int] = []
    vectors: list[np.ndarray] = []
    seen: set[tuple[str, str]] = set()
    for spk, strings, embs in zip(spk_of, table.column(f"{text_view}.text").to_pylist(),
                                  table.column(text_view).to_pylist()):
        for text, emb in zip(strings, embs):
            if (spk, text) in seen:
                continue
            seen.add((spk, text))
            texts.append(text)
            text_labels.append(index[spk])
            vectors.append(np.asarray(emb, np.float32))
    dt = table.column(text_view).type.value_type.list_size
    return SpeakerTextData(ids=ids, speakers=speakers, labels=np.array([index[s] for s in spk_of], np.int64),
                           speaker_x=speaker_x, texts=texts, text_labels=np.array(text_labels, np.int64),
                           text_x=np.stack(vectors) if vectors else np.zeros((0, dt), np.float32))


def shard(data: SpeakerTextData, rank: int, world_size: int) -> SpeakerTextData:
    """This worker's speakers (every ``world_size``-th), all their utterances and descriptions.

    Speakers are never split across workers (a P x K batch needs all of a speaker's utterances,
    and labels keep their global meaning); every worker runs the same number of batches per epoch
    (:func:`n_batches`), since DDP's gradient all-reduce needs each worker to step as often.
    """
    if world_size <= 1:
        return data
    keep_spk = np.arange(len(data.speakers)) % world_size == rank
    keep_utt = keep_spk[data.labels]
    keep_txt = keep_spk[data.text_labels]
    return replace(data, ids=[i for i, k in zip(data.ids, keep_utt) if k], labels=data.labels[keep_utt],
                   speaker_x=data.speaker_x[keep_utt], texts=[t for t, k in zip(data.texts, keep_txt) if k],
                   text_labels=data.text_labels[keep_txt], text_x=data.text_x[keep_txt],
                   n_speakers_total=data.n_speakers_total, n_total=data.n_total, world_size=world_size, texts_of=[])


def n_batches(data: SpeakerTextData, per_batch: int) -> int:
    """Batches per epoch on each worker: the whole split's utterances once, over the workers."""
    return max(1, int(np.ceil(data.n_total / data.world_size / per_batch)))


# ------------------------------------------------------------------------------------------------
# batches


def _batch(data: SpeakerTextData, utt: np.ndarray, rng: np.random.Generator,
           texts: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Pairs (utterance, one description of its speaker): a random description unless given."""
    if texts is None:
        texts = np.array([rng.choice(data.texts_of[data.labels[u]]) for u in utt], np.int64)
    return {"speaker": torch.from_numpy(data.speaker_x[utt]), "text": torch.from_numpy(data.text_x[texts]),
            "labels": torch.from_numpy(data.labels[utt])}


def random_batches(data: SpeakerTextData, batch_size: int, rng: np.random.Generator
                   ) -> Iterator[dict[str, torch.Tensor]]:
    """An epoch = every utterance once in a random order, each paired with a random description of
    its speaker. Speaker labels are not used to build batches: two utterances of one speaker may
    share a batch and are then negatives of each other under L_CTS (the unlabelled systems B01-B03
    and C01 see no more than the paper's random pairs do)."""
    n, steps = len(data), n_batches(data, batch_size)
    order = rng.permutation(n)  # alone: each utterance once, the last batch may be smaller
    if data.world_size > 1:  # a worker's shard: its share of full batches, cycling through its utterances
        extra = int(np.ceil(steps * batch_size / n)) - 1
        order = np.concatenate([order, *(rng.permutation(n) for _ in range(extra))])
    for b in range(steps):
        utt = order[b * batch_size:(b + 1) * batch_size]
        if len(utt) >= 2 or data.world_size > 1:  # one pair alone has no negative; a share is gathered
            yield _batch(data, utt, rng)


def pk_batches(data: SpeakerTextData, speakers: int, utterances: int, rng: np.random.Generator
               ) -> Iterator[dict[str, torch.Tensor]]:
    """P speakers x K utterances per batch (SupCon, C02): every utterance of the batch has K - 1
    other utterances and K descriptions of its speaker in the batch as positives.

    Each of the K utterances is paired with a different description of its speaker while the
    speaker has enough (drawn without replacement, then cycling), so the text side of a speaker's
    group is not K copies of one string. A speaker with fewer than K utterances contributes what it
    has. An epoch has as many batches as the random sampler's would (utterances / (P * K))."""
    by_speaker = [np.flatnonzero(data.labels == s) for s in range(len(data.speakers))]
    have = np.array([len(u) > 0 for u in by_speaker])
    live = np.flatnonzero(have)
    p = min(speakers, len(live))
    for _ in range(n_batches(data, speakers * utterances)):
        chosen = rng.choice(live, size=p, replace=False)
        utt_list, txt_list = [], []
        for s in chosen:
            pool = by_speaker[s]
            utt = rng.choice(pool, size=min(utterances, len(pool)), replace=False)
            own = data.texts_of[s]
            picks = np.concatenate([rng.permutation(own) for _ in range(int(np.ceil(len(utt) / len(own))))])
            utt_list.append(utt)
            txt_list.append(picks[:len(utt)])
        yield _batch(data, np.concatenate(utt_list), rng, np.concatenate(txt_list))
