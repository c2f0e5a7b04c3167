"""Built-in encoders; importing this package registers them (see ``base.build_encoder``)."""

from transformers.utils import logging as _hf_logging

# transformers draws a "Loading weights" bar per model load: one per extraction actor and trial
_hf_logging.disable_progress_bar()

from orchestrator.encoders import (  # noqa: E402, F401
    asr,
    atst,
    clap,
    cnn14,
    ecapa,
    ge2e,
    logmel,
    multilingual_text,
    passt,
    segmenters,
    spectrogram_cnn,
    text,
    wav2vec2,
    whisper_ct2,
)
