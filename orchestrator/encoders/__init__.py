"""Built-in encoders; importing this package registers them (see ``base.build_encoder``)."""

from orchestrator.encoders import atst, logmel, passt, wav2vec2, whisper_ct2  # noqa: F401
