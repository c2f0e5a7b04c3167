"""cluster.yaml and deploy/: valid against the schema inside the ray wheel and accepted by Ray's own
AWS bootstrap (under moto); the IAM policies grant what the head's autoscaler and the bucket need and
no more; the account setup script, run with the real aws CLI against a local moto server, creates
what `ray up` then uses (no ssh open to the world); the head's services start once however often
`ray up` runs; a sweep is submitted as a Ray job pinned to the head; a GPU node without a usable GPU
fails its setup; the commit reaches the runs without .git."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import time
import sys
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ACCOUNT = "123456789012"


def config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def settings() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / "cluster.env").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def policy(name: str) -> dict:
    s = settings()
    text = (DEPLOY / "iam" / name).read_text()
    for k, v in {"bucket": s["EXPERIMENT_BUCKET"], "account": ACCOUNT, "cluster": s["CLUSTER_NAME"],
                 "region": s["AWS_REGION"]}.items():
        text = text.replace("{{" + k + "}}", v)
    assert "{{" not in text, name
    return json.loads(text)


def statements(doc: dict) -> list[dict]:
    out = []
    for st in doc["Statement"]:
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        res = st.get("Resource", [])
        res = res if isinstance(res, list) else [res]
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        out.append({**st, "Action": acts, "Resource": res})
    return out


def test_cluster_yaml_validates_against_ray_schema() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    cfg = config()
    jsonschema.validate(cfg, schema)
    gpu = cfg["available_node_types"]["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1  # autoscaling GPU workers
    head_cmds = " ".join(cfg["head_start_ray_commands"])
    assert "--num-cpus=0" in head_cmds and "--dashboard-host=127.0.0.1" in head_cmds
    assert "0.0.0.0" not in json.dumps(cfg)
    assert all("RAY_AUTH_MODE=token ray start" in " ".join(cmds)
               for cmds in (cfg["head_start_ray_commands"], cfg["worker_start_ray_commands"]))
    assert "/home/ray/.ray/auth_token" in cfg["file_mounts"]
    assert "chmod 600 ~/.ray/auth_token" in cfg["setup_commands"]  # Ray writes it with the umask's mode
    assert "--env RAY_AUTH_MODE=token" in cfg["docker"]["run_options"]  # `ray status` on the head works
    # the project installed on every node, with the README's torch pin; the head's from the CPU index
    assert any('pip install -q "torch==2.13.0" -e ~/project' in c for c in cfg["worker_setup_commands"])
    assert any("download.pytorch.org/whl/cpu" in c and "-e ~/project" in c for c in cfg["head_setup_commands"])


def test_schema_rejects_a_broken_config() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    cfg = config()
    cfg["max_workers"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cfg, schema)


def test_the_head_runs_the_driver_and_no_trials() -> None:
    cfg = config()
    head = cfg["available_node_types"][cfg["head_node_type"]]["resources"]
    # no CPU (one-worker trials hold CPUs) and no memory (a multi-worker trial's function holds a
    # little memory and no CPU): neither can be placed on the head; `head` pins the driver's job
    assert head == {"CPU": 0, "memory": 0, "head": 1}
    assert "--resources='{\"head\":1}'" in " ".join(cfg["head_start_ray_commands"])
    for name, node in cfg["available_node_types"].items():
        if name != cfg["head_node_type"]:
            assert "head" not in node["resources"] and node["resources"].get("CPU", 1) > 0


def test_one_place_for_the_settings() -> None:
    cfg, s = config(), settings()
    assert cfg["provider"]["region"] == s["AWS_REGION"]
    assert cfg["cluster_name"] == s["CLUSTER_NAME"]
    assert cfg["provider"]["security_group"]["GroupName"] == f"{s['CLUSTER_NAME']}-nodes"
    types = cfg["available_node_types"]
    assert types["head"]["node_config"]["IamInstanceProfile"] == {"Name": f"{s['CLUSTER_NAME']}-head"}
    assert types["gpu_worker"]["node_config"]["IamInstanceProfile"] == {"Name": f"{s['CLUSTER_NAME']}-worker"}
    text = (ROOT / "cluster.yaml").read_text()
    assert s["EXPERIMENT_BUCKET"] not in text and "s3://" not in text  # the bucket comes from cluster.env
    for script in ("head_services.sh", "submit_sweep.sh", "setup_account.sh"):
        body = (DEPLOY / script).read_text()
        assert '. "$here/cluster.env"' in body and s["EXPERIMENT_BUCKET"] not in body, script
    assert cfg["provider"]["cache_stopped_nodes"] is False  # the head's policy has no Start/StopInstances


def test_gpu_workers_get_a_current_driver_and_fail_without_a_gpu() -> None:
    cfg = config()
    types = cfg["available_node_types"]
    ami = "resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
    assert types["gpu_worker"]["node_config"]["ImageId"] == ami
    assert "latest_dlami" not in json.dumps(cfg)
    docker = cfg["docker"]
    assert "image" not in docker  # no image for both: the CPU head does not pull the CUDA one
    assert docker["head_image"] == "rayproject/ray:2.60.0-py311-cpu"
    assert docker["worker_image"] == "rayproject/ray:2.60.0-py311-gpu"
    assert "--gpus all" in docker["worker_run_options"]
    check = [c for c in cfg["worker_setup_commands"] if "torch.cuda.is_available()" in c]
    assert len(check) == 1 and cfg["worker_setup_commands"].index(check[0]) > 0  # after the install
    # this machine's torch sees no GPU: the very command must fail, loudly, as on a broken node
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", check[0]], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0 and "GPU node without a usable GPU" in out.stderr


def test_iam_policies_grant_what_the_cluster_needs_and_no_more() -> None:
    s = settings()
    bucket_arns = {f"arn:aws:s3:::{s['EXPERIMENT_BUCKET']}", f"arn:aws:s3:::{s['EXPERIMENT_BUCKET']}/*"}
    trust = json.loads((DEPLOY / "iam" / "ec2-trust.json").read_text())
    assert statements(trust)[0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert statements(trust)[0]["Action"] == ["sts:AssumeRole"]
    head, worker = statements(policy("head-policy.json")), statements(policy("worker-policy.json"))
    for doc in (head, worker):
        for st in doc:
            assert not any(a == "*" or a.endswith(":*") for a in st["Action"]), st  # no s3:*, ec2:*, iam:*
            if any(a.startswith("s3:") for a in st["Action"]):
                assert set(st["Resource"]) <= bucket_arns, st  # the experiment bucket only, never "*"
    # workers: Get/Put/Delete/List on the bucket, nothing else
    assert {a for st in worker for a in st["Action"]} == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                                                          "s3:ListBucket"}
    assert [st["Resource"] for st in worker if st["Action"] == ["s3:ListBucket"]] == \
        [[f"arn:aws:s3:::{s['EXPERIMENT_BUCKET']}"]]
    # head: iam:PassRole on the worker role only, to EC2 only
    passrole = [st for st in head if "iam:PassRole" in st["Action"]]
    assert len(passrole) == 1 and passrole[0]["Action"] == ["iam:PassRole"]
    assert passrole[0]["Resource"] == [f"arn:aws:iam::{ACCOUNT}:role/{s['CLUSTER_NAME']}-worker"]
    assert passrole[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    assert not [a for st in head for a in st["Action"] if a.startswith("iam:") and a != "iam:PassRole"]
    # head: the EC2 calls Ray's AWS node provider makes with this config, each granted
    granted = {a for st in head for a in st["Action"]}
    source = (Path(ray.__file__).parent / "autoscaler/_private/aws/node_provider.py").read_text()
    calls = {"instances.filter": "ec2:DescribeInstances", "create_instances": "ec2:RunInstances",
             "create_tags": "ec2:CreateTags", ".terminate()": "ec2:TerminateInstances",
             "terminate_instances": "ec2:TerminateInstances", "describe_instance_types": "ec2:DescribeInstanceTypes"}
    unreachable = {"start_instances": "ec2:StartInstances", "stop_instances": "ec2:StopInstances",  # cache_stopped_nodes: false
                   "describe_images": "ec2:DescribeImages"}  # CloudWatch agent only; no provider.cloudwatch here
    assert config()["provider"]["cache_stopped_nodes"] is False and "cloudwatch" not in config()["provider"]
    for call, action in calls.items():
        assert call in source, call  # Ray still makes this call
        assert action in granted, action
    assert not granted & set(unreachable.values())
    ec2_extra = {a for a in granted if a.startswith("ec2:")} - set(calls.values())
    assert not ec2_extra, ec2_extra
    # terminating and re-tagging only this cluster's nodes (Ray tags every node ray-cluster-name)
    from ray.autoscaler.tags import TAG_RAY_CLUSTER_NAME

    terminate = [st for st in head if "ec2:TerminateInstances" in st["Action"]]
    assert len(terminate) == 1
    assert terminate[0]["Condition"] == {"StringEquals": {f"ec2:ResourceTag/{TAG_RAY_CLUSTER_NAME}": s["CLUSTER_NAME"]}}


def _bootstrap(cfg: dict) -> dict:
    from ray.autoscaler._private.aws.config import bootstrap_aws
    from ray.autoscaler._private.aws.utils import client_cache, resource_cache
    from ray.autoscaler._private.util import prepare_config

    client_cache.cache_clear()  # Ray keeps boto3 clients per process: none from another endpoint
    resource_cache.cache_clear()
    return bootstrap_aws(prepare_config(copy.deepcopy(cfg)))


def _aws_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # Ray writes the generated ssh key under ~/.ssh
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", settings()["AWS_REGION"])
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr("time.sleep", lambda s: None)  # Ray waits 15 s for IAM propagation


def _assert_bootstrap_uses_the_accounts_resources(boot: dict, ec2, iam, sg_id: str) -> None:
    s = settings()
    types = boot["available_node_types"]
    for name, node in types.items():
        nc = node["node_config"]
        assert nc["ImageId"].startswith("resolve:ssm:/aws/service/deeplearning/ami/"), name
        assert nc.get("SubnetIds") and nc["SecurityGroupIds"] == [sg_id], name
    assert types["head"]["node_config"]["IamInstanceProfile"] == {"Name": f"{s['CLUSTER_NAME']}-head"}
    assert types["gpu_worker"]["node_config"]["IamInstanceProfile"] == {"Name": f"{s['CLUSTER_NAME']}-worker"}
    assert "IamInstanceProfile" not in boot.get("head_node", {})  # Ray's EC2+S3-full default not used
    profiles = {p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]}
    assert "ray-autoscaler-v1" not in profiles
    perms = ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]["IpPermissions"]
    assert "0.0.0.0/0" not in json.dumps(perms)  # Ray added none of its default rules
    assert [r["CidrIp"] for p in perms for r in p["IpRanges"]] == ["198.51.100.7/32"]


def test_ray_aws_bootstrap_uses_the_accounts_profiles_and_security_group(tmp_path: Path, monkeypatch) -> None:
    """What deploy/setup_account.sh creates (here through boto3, under moto's mock_aws) is what
    Ray's own bootstrap picks: both instance profiles, the security group, and no ssh to the world."""
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    _aws_env(monkeypatch, tmp_path)
    s = settings()
    with moto.mock_aws():
        iam, ec2 = boto3.client("iam"), boto3.client("ec2")
        for node in ("head", "worker"):
            name = f"{s['CLUSTER_NAME']}-{node}"
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=(DEPLOY / "iam/ec2-trust.json").read_text())
            iam.create_instance_profile(InstanceProfileName=name)
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        sg = ec2.create_security_group(GroupName=f"{s['CLUSTER_NAME']}-nodes", Description="d", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]},
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.7/32"}]}])
        boot = _bootstrap(config())
        _assert_bootstrap_uses_the_accounts_resources(boot, ec2, iam, sg)


@pytest.mark.skipif(shutil.which("aws") is None, reason="needs the aws CLI")
def test_setup_account_script_with_the_aws_cli_against_moto(tmp_path: Path, monkeypatch) -> None:
    """The README's setup, run as written (the real aws CLI) against a local moto server; then Ray's
    bootstrap against the same server uses what it created. Re-running it changes nothing."""
    from moto.server import ThreadedMotoServer

    boto3 = pytest.importorskip("boto3")
    _aws_env(monkeypatch, tmp_path)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "IAM_PROPAGATION_WAIT_S": "0"}
        refused = subprocess.run(["bash", str(DEPLOY / "setup_account.sh")], capture_output=True, text=True,
                                 env={**env, "SSH_CIDR": "0.0.0.0/0"}, timeout=60)
        assert refused.returncode == 1 and "whole internet" in refused.stderr
        missing = subprocess.run(["bash", str(DEPLOY / "setup_account.sh")], capture_output=True, text=True,
                                 env={k: v for k, v in env.items() if k != "SSH_CIDR"}, timeout=60)
        assert missing.returncode != 0 and "SSH_CIDR" in missing.stderr
        for _ in range(2):
            out = subprocess.run(["bash", str(DEPLOY / "setup_account.sh")], capture_output=True, text=True,
                                 env={**env, "SSH_CIDR": "198.51.100.7/32"}, timeout=300)
            assert out.returncode == 0, out.stdout + out.stderr
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        s = settings()
        s3, iam, ec2 = boto3.client("s3"), boto3.client("iam"), boto3.client("ec2")
        loc = s3.get_bucket_location(Bucket=s["EXPERIMENT_BUCKET"])["LocationConstraint"]
        assert loc == s["AWS_REGION"]  # `aws s3 mb --region`
        for node in ("head", "worker"):
            name = f"{s['CLUSTER_NAME']}-{node}"
            doc = iam.get_role_policy(RoleName=name, PolicyName=name)["PolicyDocument"]
            assert doc == policy(f"{node}-policy.json")
        sgs = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{s['CLUSTER_NAME']}-nodes"]}])
        assert len(sgs["SecurityGroups"]) == 1
        boot = _bootstrap(config())
        _assert_bootstrap_uses_the_accounts_resources(boot, ec2, iam, sgs["SecurityGroups"][0]["GroupId"])
    finally:
        server.stop()


def _fake_bin(tmp_path: Path, name: str, body: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / name).write_text(f"#!{sys.executable}\n{body}")
    (bindir / name).chmod(0o755)
    return bindir


def _write_db(db: Path, *values: int) -> None:
    con = sqlite3.connect(str(db))
    with con:
        con.execute("create table if not exists t (v integer)")
        con.executemany("insert into t values (?)", [(v,) for v in values])
    con.close()


def test_head_services_start_once_and_stop_with_a_final_backup(tmp_path: Path) -> None:
    """`ray up` runs `head_services.sh start` each time: the second run starts no second MLflow
    server (it would fail to bind the port) and no second backup loop; `stop` ends both, the loop
    after a final backup. MLflow is a stand-in process here; the backup loop is the real one."""
    bindir = _fake_bin(tmp_path, "mlflow", "import time\ntime.sleep(600)\n")
    mdir, bucket = tmp_path / "mlflow", tmp_path / "bucket"
    bucket.mkdir()
    _write_db(bucket / "earlier.db", 1)
    (bucket / "mlflow.db").write_bytes((bucket / "earlier.db").read_bytes())  # the bucket's last backup
    env = {**os.environ, "PATH": f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "MLFLOW_DIR": str(mdir), "MLFLOW_BACKUP_URI": str(bucket / "mlflow.db"),
           "MLFLOW_ARTIFACTS_URI": str(tmp_path / "artifacts"), "MLFLOW_BACKUP_EVERY_S": "3600"}
    script = ["bash", str(DEPLOY / "head_services.sh")]
    pids: list[int] = []
    try:
        (mdir).mkdir()
        (mdir / "mlflow.pid").write_text(str(os.getpid()))  # a stale pid file naming another process
        first = subprocess.run([*script, "start"], capture_output=True, text=True, env=env, timeout=120)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "restored" in first.stdout and first.stdout.count("started") == 2
        pids = [int((mdir / f"{n}.pid").read_text()) for n in ("mlflow", "backup")]
        assert os.getpid() not in pids
        second = subprocess.run([*script, "start"], capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 0 and second.stdout.count("already running") == 2, second.stdout
        assert [int((mdir / f"{n}.pid").read_text()) for n in ("mlflow", "backup")] == pids
        for pid in pids:
            os.kill(pid, 0)  # both still alive
        _write_db(mdir / "mlflow.db", 2)  # the server wrote after the restore; the next round is an hour away
        stop = subprocess.run([*script, "stop"], capture_output=True, text=True, env=env, timeout=200)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert not (mdir / "mlflow.pid").exists() and not (mdir / "backup.pid").exists()
        assert "final backup taken" in (mdir / "backup.log").read_text()
        con = sqlite3.connect(str(bucket / "mlflow.db"))
        assert [r[0] for r in con.execute("select v from t order by v")] == [1, 2]
        con.close()
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_head_services_on_postgres_start_only_the_server(tmp_path: Path) -> None:
    """With MLFLOW_BACKEND_STORE_URI (the recommended PostgreSQL store) the head runs the MLflow
    server on it, and neither restores nor backs up a sqlite file."""
    argv_file = tmp_path / "mlflow_argv.json"
    bindir = _fake_bin(tmp_path, "mlflow", f"import json, sys, time\njson.dump(sys.argv[1:], open({str(argv_file)!r}, 'w'))\n"
                                           "time.sleep(600)\n")
    mdir = tmp_path / "mlflow"
    uri = "postgresql+psycopg://mlflow@db.internal:5432/mlflow"
    env = {**os.environ, "PATH": f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "MLFLOW_DIR": str(mdir), "MLFLOW_BACKEND_STORE_URI": uri, "MLFLOW_BACKUP_URI": str(tmp_path / "nowhere.db"),
           "MLFLOW_ARTIFACTS_URI": str(tmp_path / "artifacts")}
    pid = None
    try:
        run = subprocess.run(["bash", str(DEPLOY / "head_services.sh"), "start"], capture_output=True, text=True,
                             env=env, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        pid = int((mdir / "mlflow.pid").read_text())
        assert run.stdout.count("started") == 1 and not (mdir / "backup.pid").exists()
        for _ in range(100):
            if argv_file.exists() and argv_file.stat().st_size:
                break
            time.sleep(0.1)
        argv = json.loads(argv_file.read_text())
        assert argv[argv.index("--backend-store-uri") + 1] == uri
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)


def test_sweep_is_submitted_as_a_ray_job_pinned_to_the_head(tmp_path: Path) -> None:
    out_file = tmp_path / "argv.json"
    bindir = _fake_bin(tmp_path, "ray", f"import json, sys\njson.dump(sys.argv[1:], open({str(out_file)!r}, 'w'))\n")
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "GIT_COMMIT": "0123abc"}
    run = subprocess.run(["bash", str(DEPLOY / "submit_sweep.sh"), "atst_lr", "--gpus-per-worker", "1",
                          "--set", "optim={lr: 1e-4}"], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    argv = json.loads(out_file.read_text())
    assert argv[:2] == ["job", "submit"] and "--no-wait" in argv
    assert argv[argv.index("--address") + 1] == "http://127.0.0.1:8265"  # the head's dashboard
    wants = json.loads(argv[argv.index("--entrypoint-resources") + 1])
    cfg = config()
    has = cfg["available_node_types"][cfg["head_node_type"]]["resources"]
    assert set(wants) == {"head"} and 0 < wants["head"] <= has["head"]
    assert json.loads(argv[argv.index("--runtime-env-json") + 1]) == {"env_vars": {"GIT_COMMIT": "0123abc"}}
    entry = shlex.split(argv[argv.index("--") + 1])
    assert entry[:3] == ["cd", str(ROOT), "&&"]
    bucket = settings()["EXPERIMENT_BUCKET"]
    assert entry[3:] == ["exec", "python", "-m", "orchestrator.sweep", "atst_lr", "--gpus-per-worker", "1",
                         "--set", "optim={lr: 1e-4}", "--address", "auto", "--cache-dir", f"s3://{bucket}/cache",
                         "--storage-path", f"s3://{bucket}/ray_results", "--tracking-uri", "http://127.0.0.1:5000"]


def test_git_commit_without_dot_git_comes_from_the_submitter(tmp_path: Path, monkeypatch) -> None:
    from orchestrator.tracking import git_commit

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"
    monkeypatch.setenv("GIT_COMMIT", "0123abc\n")
    assert git_commit(tmp_path) == "0123abc"
    assert re.fullmatch(r"[0-9a-f]{40}", git_commit(ROOT)) or not (ROOT / ".git").exists()  # a checkout wins


def test_readme_runs_the_sweep_as_a_job_and_names_the_gpu_quota() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## On a cluster", 1)[1].split("\n## ", 1)[0]
    assert 'Running On-Demand G and VT instances' in section
    assert "deploy/setup_account.sh" in section
    for line in section.splitlines():
        if "ray exec" in line and "orchestrator.sweep" in line:
            pytest.fail(f"the sweep runs under the ssh session: {line}")
        if "aws s3 mb" in line:
            assert "--region" in line, line
    assert "submit_sweep.sh" in section and "head_services.sh stop" in section
