"""wav2vec 2.0 family encoders (VoxRex, XLS-R, HuBERT, ...) for the ``paper`` profile.

The weights are not available offline, so this loader's job is mostly to be exact when they are
(one wave's frames do not depend on what else is in the batch, for models that support a mask)
and to say in one line what is missing when they are not.

The model class comes from the checkpoint's ``config.json`` (``AutoModel``: ``model_type``
"wav2vec2" -> ``Wav2Vec2Model``, "hubert" -> ``HubertModel``, ...), always the bare encoder: a
fine-tuned checkpoint (``Wav2Vec2ForCTC``, e.g. ``facebook/wav2vec2-large-960h`` or
``facebook/hubert-large-ls960-ft``) loads its encoder weights and leaves its CTC ``lm_head`` out.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, PreTrainedModel, Wav2Vec2FeatureExtractor

from orchestrator.encoders.base import AudioEncoder, EncoderUnavailableError, hash_files, register_encoder

log = logging.getLogger(__name__)

_WEIGHT_GLOBS = ("model*.safetensors", "pytorch_model*.bin")  # in from_pretrained's order of preference
Output = Literal["hidden", "extract_features"]


@register_encoder("wav2vec2")
class Wav2Vec2Encoder(AudioEncoder):
    """Frames of a wav2vec 2.0-style model (wav2vec2, HuBERT, ...); pooled by mean over frames.

    ``output="hidden"`` (default): hidden states of one transformer layer. ``layer`` indexes
    ``hidden_states`` as transformers returns them: 0 is the transformer's input (after the CNN and
    projection), ``num_hidden_layers`` (or -1) the last layer's output.

    ``output="extract_features"``: the convolutional feature encoder's output (``conv_dim[-1]``, 512
    for the released models) before the projection into the transformer, layer-normed as the model's
    feature projection does, i.e. ``Wav2Vec2Model``'s ``extract_features`` output. This is what the
    speaker–text retrieval paper mean-pools for ``facebook/wav2vec2-large-960h`` (its footnote 4,
    "the feature encoder of the network"). HuBERT returns no ``extract_features``, so the same
    computation (CNN, then the projection's layer norm when the config has one) is done here for
    every model type; the transformer is not run.

    ``attention_mask`` is passed only when ``feat_extract_norm == "layer"`` (large models), as
    transformers documents; group-norm (base) models were trained without one and are fed
    zero-padded batches, so their padded frames can slightly affect real ones (for both outputs:
    the first conv layer's group norm spans the whole padded time axis).
    """

    def __init__(
        self,
        model: str,
        layer: int = -1,
        batch_size: int = 8,
        cache_dir: str | None = None,
        output: Output = "hidden",
    ) -> None:
        super().__init__()
        if output not in ("hidden", "extract_features"):
            raise ValueError(f"output must be 'hidden' or 'extract_features', got {output!r}")
        self.model_name = str(model)
        self.encoder_id = f"wav2vec2:{self.model_name}"
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.output = output
        self.model = self._load_model()
        self.model.eval()
        n_layers = self.model.config.num_hidden_layers
        if not -(n_layers + 1) <= layer <= n_layers:
            raise ValueError(f"layer {layer} out of range for {self.model_name!r} ({n_layers} layers; 0..{n_layers})")
        self.layer = layer % (n_layers + 1)
        self.dim = self.model.config.conv_dim[-1] if output == "extract_features" else self.model.config.hidden_size
        self.feature_extractor = self._load_feature_extractor()
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.use_mask = getattr(self.model.config, "feat_extract_norm", "layer") == "layer"
        self.weights_dir = self._resolve_weights_dir()
        self._hash: str | None = None

    # ---- loading ---------------------------------------------------------------------------

    def _load_model(self) -> PreTrainedModel:
        """The bare encoder class for the checkpoint's ``model_type`` (AutoModel maps a config class
        to its base model, so CTC/pretraining heads are dropped while their encoder loads)."""
        try:
            config = AutoConfig.from_pretrained(self.model_name, cache_dir=self.cache_dir)
            model = AutoModel.from_pretrained(self.model_name, config=config, cache_dir=self.cache_dir)
        except (OSError, ValueError) as e:  # transformers/hub report missing files and bad ids as these
            raise EncoderUnavailableError(self._missing_message(e)) from None
        if not all(hasattr(model, a) for a in ("feature_extractor", "feature_projection",
                                               "_get_feat_extract_output_lengths")):
            raise EncoderUnavailableError(
                f"{self.model_name!r} is a {config.model_type!r} model ({type(model).__name__}), not a "
                "wav2vec 2.0-style speech encoder (wav2vec2, hubert, wavlm, ...)"
            )
        return model

    def _missing_message(self, err: Exception) -> str:
        import huggingface_hub

        cache = self.cache_dir or huggingface_hub.constants.HF_HUB_CACHE
        offline = huggingface_hub.constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        local = Path(self.model_name).expanduser().resolve()
        if local.is_dir():
            where = f"local directory {local} has no usable weights"
        elif self.model_name.startswith(("/", ".", "~")):
            where = f"local directory {local} does not exist"
        else:
            where = f"no local directory {local}, not in the Hugging Face cache {cache}" + (
                " (HF_HUB_OFFLINE=1, nothing downloaded)" if offline else " and not downloadable"
            )
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        return f"wav2vec2 weights for {self.model_name!r} not found: {where} [{reason}]"

    def _load_feature_extractor(self) -> Wav2Vec2FeatureExtractor:
        try:
            return AutoFeatureExtractor.from_pretrained(self.model_name, cache_dir=self.cache_dir)
        except (OSError, ValueError):
            # Fine-tuning checkpoints often ship without preprocessor_config.json; params() records
            # the defaults used, so the cache key shows it.
            log.warning("no feature extractor config for %r; using Wav2Vec2FeatureExtractor()", self.model_name)
            return Wav2Vec2FeatureExtractor()

    def _resolve_weights_dir(self) -> Path:
        local = Path(self.model_name).expanduser()
        if local.is_dir():
            return local
        import huggingface_hub

        found = huggingface_hub.try_to_load_from_cache(self.model_name, "config.json", cache_dir=self.cache_dir)
        if not isinstance(found, str):
            raise EncoderUnavailableError(f"wav2vec2 {self.model_name!r} loaded but has no snapshot in the HF cache")
        return Path(found).parent

    # ---- contract --------------------------------------------------------------------------

    def weights_hash(self) -> str:
        if self._hash is None:
            for pattern in _WEIGHT_GLOBS:
                files = sorted(self.weights_dir.glob(pattern))
                if files:
                    self._hash = hash_files(files)
                    break
            else:
                raise EncoderUnavailableError(f"no model*.safetensors or pytorch_model*.bin in {self.weights_dir}")
        return self._hash

    def params(self) -> dict[str, Any]:
        fe = self.feature_extractor
        if self.output == "extract_features":
            return {
                "output": "extract_features",
                "pooling": "mean",
                "do_normalize": bool(getattr(fe, "do_normalize", False)),
                "sample_rate": self.sample_rate,
            }
        # output="hidden": the original keys only, so existing cache keys stay valid
        return {
            "layer": self.layer,
            "pooling": "mean",
            "do_normalize": bool(getattr(fe, "do_normalize", False)),
            "attention_mask": self.use_mask,
            "sample_rate": self.sample_rate,
        }

    def to(self, device: str | torch.device) -> "Wav2Vec2Encoder":
        super().to(device)
        self.model.to(self.device)
        return self

    def frame_count(self, n_samples: int) -> int:
        return int(self.model._get_feat_extract_output_lengths(n_samples))

    def _inputs(self, wave: np.ndarray) -> np.ndarray:
        """One wave through the feature extractor alone, so normalisation never sees padding."""
        out = self.feature_extractor(
            np.asarray(wave, dtype=np.float32).reshape(-1), sampling_rate=self.sample_rate, return_tensors="np"
        )
        return out["input_values"][0].astype(np.float32)

    def _forward(self, inputs: list[np.ndarray]) -> list[torch.Tensor]:
        lens = [x.size for x in inputs]
        batch = torch.zeros(len(inputs), max(lens), device=self.device)
        mask = torch.zeros(len(inputs), max(lens), dtype=torch.long, device=self.device)
        for i, x in enumerate(inputs):
            batch[i, : lens[i]] = torch.from_numpy(x).to(self.device)
            mask[i, : lens[i]] = 1
        if self.output == "extract_features":
            feats = self.model.feature_extractor(batch).transpose(1, 2)
            norm = getattr(self.model.feature_projection, "layer_norm", None)  # HuBERT: only if feat_proj_layer_norm
            if norm is not None:
                feats = norm(feats)
            return [feats[i, : self.frame_count(n)] for i, n in enumerate(lens)]
        out = self.model(
            batch,
            attention_mask=mask if self.use_mask else None,
            output_hidden_states=self.layer != self.model.config.num_hidden_layers,
        )
        hidden = out.last_hidden_state if out.hidden_states is None else out.hidden_states[self.layer]
        return [hidden[i, : self.frame_count(n)] for i, n in enumerate(lens)]

    @torch.inference_mode()
    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        for i, w in enumerate(waves):
            if self.frame_count(np.asarray(w).size) < 1:
                raise ValueError(f"wave {i} ({np.asarray(w).size} samples) is shorter than one wav2vec2 frame")
        order = sorted(range(len(waves)), key=lambda i: np.asarray(waves[i]).size)
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(waves)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, h in zip(chunk, self._forward([self._inputs(waves[i]) for i in chunk])):
                out[i] = h.float().cpu().numpy()
        return out

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        return super().embed(waves)
