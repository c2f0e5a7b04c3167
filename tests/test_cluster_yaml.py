"""cluster.yaml must validate against the schema that ships inside the ray wheel."""

import json
from pathlib import Path

import jsonschema
import ray
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_cluster_yaml_validates_against_ray_schema() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    assert config["docker"]["image"] == "rayproject/ray:2.60.0-py311-gpu"
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1  # autoscaling GPU workers
    assert any("pip install" in c and "-e ~/project" in c for c in config["setup_commands"])


def test_schema_rejects_a_broken_config() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["max_workers"] = "many"
    try:
        jsonschema.validate(config, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("schema accepted max_workers='many'")
