"""The sweep CLI as a user meets it: config errors are one line, fast, before Ray starts; --help
documents every flag; --resume restores or refuses with one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.config import ConfigError
from orchestrator.plan import Invocation, restore_invocation
from orchestrator.sweep import build_parser


def run_cli(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "orchestrator.sweep", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    return done, time.perf_counter() - t0


@pytest.mark.parametrize("args,expect", [
    (["qbe_margin", "--set", "nosuchkey=1"], "valid keys: band_high"),
    (["qbe_margin", "--set", "lr=abc"], "--set: lr:"),
    (["qbe_margin", "--num-samples", "0"], "--num-samples must be >= 1"),
    (["qbe_margin", "--max-epochs", "-1"], "--max-epochs must be >= 1"),
    (["qbe_paper", "--profile", "paper"], "give --data-root"),
    (["qbe_paper", "--profile", "paper", "--data-root", "/nonexistent/fleurs"], "no such directory"),
    (["qbe_margin", "--resume"], "nothing to resume"),
    (["no_such_sweep"], "unknown sweep 'no_such_sweep'"),
])
def test_config_errors_are_one_line_and_fast(tmp_path: Path, args: list[str], expect: str) -> None:
    """Each is one stderr line within 2 s on an idle machine; the bound here is generous for a busy
    CI runner, and still far below the 7-31 s that starting Ray and torch costs."""
    import os

    root = Path(__file__).resolve().parent.parent
    done, seconds = run_cli(*args, "--storage-path", str(tmp_path / "rr"), cwd=root)
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2 and done.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], done.stderr
    assert seconds < (6.0 if os.cpu_count() and os.cpu_count() <= 2 else 4.0), seconds
    assert not (tmp_path / "rr").exists()  # nothing was started or written


def test_help_documents_every_flag() -> None:
    parser = build_parser()
    text = parser.format_help()
    for action in parser._actions:
        assert action.help, f"{action.option_strings or action.dest} has no help text"
    assert "`" not in (parser.description or "")
    examples = text.split("examples:", 1)[1].strip().splitlines()
    assert len(examples) == 3 and all(ln.strip().startswith("python -m orchestrator.sweep") for ln in examples)
    num_samples = next(a for a in parser._actions if "--num-samples" in a.option_strings)
    assert "grid" in num_samples.help


def write_run(root: Path, inv: Invocation, status: str | None = None) -> None:
    exp = root / "qbe_margin" / "records" / inv.experiment
    exp.mkdir(parents=True)
    (exp / "invocation.json").write_text(inv.to_json())
    (root / "qbe_margin" / "LATEST").write_text(inv.experiment)
    if status:
        (exp / "tracking.json").write_text(json.dumps({"status": status, "children": {}}))


def test_resume_restores_the_invocation_and_refuses_conflicts(tmp_path: Path) -> None:
    saved = Invocation(sweep="qbe_margin", max_epochs=3, num_samples=4, overrides=["lr=3e-4"],
                       experiment="qbe_margin-20260101-000000")
    write_run(tmp_path, saved)
    inv = restore_invocation("qbe_margin", str(tmp_path), {})
    assert (inv.max_epochs, inv.num_samples, inv.overrides, inv.experiment) == (3, 4, ["lr=3e-4"], saved.experiment)
    assert restore_invocation("qbe_margin", str(tmp_path), {"max_epochs": 3}).max_epochs == 3  # same flag: fine
    with pytest.raises(ConfigError, match=r"--max-epochs 5 differs from the interrupted run's 3"):
        restore_invocation("qbe_margin", str(tmp_path), {"max_epochs": 5})
    with pytest.raises(ConfigError, match="--set"):
        restore_invocation("qbe_margin", str(tmp_path), {"overrides": ["lr=1e-3"]})


def test_resume_of_a_finished_sweep_is_refused(tmp_path: Path) -> None:
    write_run(tmp_path, Invocation(sweep="qbe_margin", experiment="qbe_margin-20260101-000000"), status="FINISHED")
    with pytest.raises(ConfigError, match="nothing to resume: qbe_margin-20260101-000000 finished"):
        restore_invocation("qbe_margin", str(tmp_path), {})


def test_database_passwords_are_not_printed() -> None:
    from orchestrator.sweep import _without_password

    assert _without_password("postgresql+psycopg://mlflow:s3cr@t@db.example:5432/runs") == \
        "postgresql+psycopg://mlflow:***@db.example:5432/runs"
    assert _without_password("postgresql://mlflow@db.example/runs") == "postgresql://mlflow@db.example/runs"
    assert _without_password("sqlite:///mlruns/mlflow.db") == "sqlite:///mlruns/mlflow.db"
