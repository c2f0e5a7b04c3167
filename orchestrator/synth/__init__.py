"""Offline synthesis of audio for the embedded `local` corpora."""
