"""cluster.yaml: valid against the schema inside the ray wheel, and accepted by Ray's own AWS
bootstrap (run under moto's mock_aws): every node type resolves an image and has an instance
profile, the head runs no trials, the dashboard and MLflow bind to localhost, every node gets the
project installed and the shared auth token."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parent.parent


def config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_validates_against_ray_schema() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    cfg = config()
    jsonschema.validate(cfg, schema)
    assert cfg["docker"]["image"] == "rayproject/ray:2.60.0-py311-gpu"
    gpu = cfg["available_node_types"]["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1  # autoscaling GPU workers
    assert any('pip install -q "torch==2.13.0" -e ~/project' in c for c in cfg["setup_commands"])
    head_cmds = " ".join(cfg["head_start_ray_commands"])
    assert "--num-cpus=0" in head_cmds and "--dashboard-host=127.0.0.1" in head_cmds
    assert "0.0.0.0" not in json.dumps(cfg)
    assert "mlflow server --host 127.0.0.1" in head_cmds and "--artifacts-destination s3://" in head_cmds
    assert all("RAY_AUTH_MODE=token ray start" in " ".join(cmds)
               for cmds in (cfg["head_start_ray_commands"], cfg["worker_start_ray_commands"]))
    assert "/home/ray/.ray/auth_token" in cfg["file_mounts"]


def test_schema_rejects_a_broken_config() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    cfg = config()
    cfg["max_workers"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cfg, schema)


def test_ray_aws_bootstrap_resolves_images_and_instance_profiles(tmp_path: Path, monkeypatch) -> None:
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    monkeypatch.setenv("HOME", str(tmp_path))  # Ray writes the generated ssh key under ~/.ssh
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # Ray attaches AWS-managed policies
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr("time.sleep", lambda s: None)  # Ray waits 15 s for IAM propagation
    from ray.autoscaler._private.aws.config import bootstrap_aws
    from ray.autoscaler._private.util import prepare_config

    with moto.mock_aws():
        iam = boto3.client("iam")
        iam.create_instance_profile(InstanceProfileName="audio-retrieval-worker")  # the README's step
        boot = bootstrap_aws(prepare_config(copy.deepcopy(config())))
    types = boot["available_node_types"]
    from ray.autoscaler._private.aws.config import DEFAULT_AMI

    for name, node in types.items():
        nc = node["node_config"]
        assert nc["ImageId"] == DEFAULT_AMI["us-west-2"], name
        assert nc.get("SubnetIds") and nc.get("SecurityGroupIds"), name
    assert types["gpu_worker"]["node_config"]["IamInstanceProfile"] == {"Name": "audio-retrieval-worker"}
    head_profile = boot.get("head_node", {}).get("IamInstanceProfile") or \
        types["head"]["node_config"].get("IamInstanceProfile")
    assert head_profile and "ray-autoscaler-v1" in json.dumps(head_profile)
    assert os.environ["HOME"] == str(tmp_path)
