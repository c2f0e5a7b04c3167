"""Search-space and config validation: unknown keys and bad ranges are one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.config import (
    ConfigError,
    check_keys,
    discrete_combinations,
    list_search_spaces,
    load_search_space,
    parse_set,
)
from orchestrator.plan import Invocation, resolve
from orchestrator.registry import load_info
from orchestrator.sweep import main


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return str(p)


BASE = "workload: qbe\nmetric: val/silhouette\nmode: max\n"


def test_shipped_search_spaces_load() -> None:
    names = list_search_spaces()
    assert {"qbe_margin", "qbe_paper"} <= set(names)
    for n in names:
        load_search_space(n)


def test_unknown_key_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_search_space(write(tmp_path, BASE + "searchr: optuna\n"))
    assert "searchr: unknown key" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("spec,msg", [
    ("{type: uniform, low: 1.0, high: 0.5}", "low (1.0) must be < high (0.5)"),
    ("{type: loguniform, low: 0, high: 1}", "loguniform needs low > 0"),
    ("{type: choice, values: []}", "non-empty 'values'"),
    ("{type: uniform, low: 1}", "needs 'low' and 'high'"),
])
def test_bad_ranges(tmp_path: Path, spec: str, msg: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(msg)):
        load_search_space(write(tmp_path, BASE + f"param_space:\n  lr: {spec}\n"))


def test_grid_and_optuna_are_not_mixed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot take grid"):
        load_search_space(write(tmp_path, BASE + "param_space:\n  lr: {type: grid, values: [1, 2]}\n"))
    with pytest.raises(ConfigError, match="one seed"):
        load_search_space(write(tmp_path, BASE + "seeds: [0, 1]\n"))


def test_unknown_sweep_lists_known() -> None:
    with pytest.raises(ConfigError, match="unknown sweep 'nope'; known: .*qbe_margin"):
        load_search_space("nope")


def test_set_values_are_yaml() -> None:
    assert parse_set(["lr=1e-3", "dataset=swedish", "n_words=12"]) == {"lr": 1e-3, "dataset": "swedish", "n_words": 12}
    with pytest.raises(ConfigError):
        parse_set(["lr"])


def plan_for(sweep: str = "qbe_margin", **kw):
    return resolve(Invocation(sweep=sweep, **kw))


def test_workload_keys_checked() -> None:
    with pytest.raises(ConfigError, match=r"--set: unknown key\(s\) \['lrr'\] for qbe; valid keys: .*margin_start"):
        plan_for(overrides=["lrr=1"])
    with pytest.raises(ConfigError, match="band_low"):
        plan_for(overrides=["band_low=0.9", "band_high=0.8"])
    plan = plan_for(overrides=["epochs=7"])
    assert plan.base["epochs"] == 7 and plan.base["encoder"] == "whisper_tiny_en"  # profile < --set
    check_keys(load_info("qbe").config_cls, ["lr", "margin_start"], "x")


def test_bad_set_value_blames_set() -> None:
    with pytest.raises(ConfigError) as e:
        plan_for(overrides=["lr=abc"])
    assert str(e.value).startswith("--set: lr:") and "search space" not in str(e.value)


def test_set_of_a_searched_key_pins_it() -> None:
    """--set lr=3e-4 on qbe_margin (which searches lr) removes lr from the search; the plan says so."""
    plan = plan_for(overrides=["lr=3e-4"])
    assert plan.pinned == {"lr": 3e-4} and "lr" not in plan.space.param_space and plan.base["lr"] == 3e-4
    assert "margin_start" in plan.space.param_space


@pytest.mark.parametrize("kw,msg", [
    ({"num_samples": 0}, "--num-samples must be >= 1, got 0"),
    ({"num_samples": -1}, "--num-samples must be >= 1, got -1"),
    ({"max_epochs": 0}, "--max-epochs must be >= 1, got 0"),
])
def test_counts_below_one_are_rejected(kw: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(msg)):
        plan_for(**kw)


def test_max_epochs_is_the_effective_epochs() -> None:
    plan = plan_for(max_epochs=3)
    assert plan.base["epochs"] == 3 and "3 epochs (--max-epochs 3; without it 200)" in (plan.epochs_note or "")
    assert plan_for(num_samples=7).n_trials == 7
    with pytest.raises(ConfigError, match="grid sweep"):
        plan_for("atst_lr", num_samples=3)


def test_data_root_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give --data-root"):
        plan_for("qbe_paper", profile="paper")
    with pytest.raises(ConfigError, match="no such directory"):
        plan_for("qbe_paper", profile="paper", data_root=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="only read by --profile paper"):
        plan_for(data_root=str(tmp_path))


def test_discrete_combinations_for_extraction() -> None:
    paper = load_search_space("qbe_paper")
    combos = discrete_combinations(paper, ("dataset", "encoder"), {"encoder": "e"})
    assert combos == [{"dataset": "swedish", "encoder": "e"}, {"dataset": "multilingual", "encoder": "e"}]
    margin = load_search_space("qbe_margin")
    with pytest.raises(ConfigError, match="decides which data"):
        discrete_combinations(margin, ("lr",), {})


def test_cli_config_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["does_not_exist"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown sweep 'does_not_exist'") and "\n" not in err
    assert main(["qbe_margin", "--set", "nonsense=1"]) == 2
    assert "unknown key(s) ['nonsense']" in capsys.readouterr().err


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "qbe_margin" in out and "qbe_paper" in out
