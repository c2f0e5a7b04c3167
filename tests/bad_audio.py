"""Shared check for the real-corpus adapters: an audio file the dataset's tables list but the disk
lacks is kept in the manifest and becomes a bad item of the core's check before extraction (one
line naming it without ``--skip-bad-items``, quarantined with its reason with it). The full Ray
path with the flag is tested once in ``tests/test_extract.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.corpus import FileHashMemo, missing_audio, read_manifest


def assert_missing_is_a_bad_item(manifest: Path, item_ids: str | list[str], path: Path, n_items: int) -> None:
    """``item_ids``: the items cut from the missing file (a QbE sentence WAV holds several words)."""
    from orchestrator.extract import BadItemsError, _audio_plan, extract

    ids = [item_ids] if isinstance(item_ids, str) else sorted(item_ids)
    table = read_manifest(manifest)
    assert table.num_rows == n_items  # kept, not dropped
    reason = f"missing audio file {Path(path).resolve()}"
    assert missing_audio(table) == dict.fromkeys(ids, reason)
    # without --skip-bad-items: one line naming the item and the file, before Ray does any work
    with pytest.raises(BadItemsError) as e:
        extract(manifest, "logmel_stats", {}, Path(manifest).parent / "views")
    msg = str(e.value)
    assert "\n" not in msg and f"{ids[0]}: {reason}" in msg and "--skip-bad-items" in msg
    assert msg.startswith(f"{len(ids)} bad item(s)")
    # with it: quarantined up front with its reason; every other item goes to the encoder
    plan = _audio_plan(table, FileHashMemo(None))
    assert plan.bad == dict.fromkeys(ids, reason) and plan.units.num_rows == n_items - len(ids)
    assert not set(ids) & set(plan.units.column("id").to_pylist())
