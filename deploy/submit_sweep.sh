#!/usr/bin/env bash
# Submit a sweep as a Ray job, on the head (through `ray exec`). The driver then runs under Ray's job
# manager, not under the ssh session, so a dropped connection does not stop it; it is pinned to the
# head by the `head` resource only the head has. Prints the job id; `ray job logs -f ID` follows it.
#
#   ray exec cluster.yaml "GIT_COMMIT=$(git rev-parse HEAD) bash ~/project/deploy/submit_sweep.sh atst_lr --gpus-per-worker 1"
#   ray exec cluster.yaml "GIT_COMMIT=$(git rev-parse HEAD) bash ~/project/deploy/submit_sweep.sh atst_lr --resume"
#
# The arguments go to `python -m orchestrator.sweep`, followed by the cluster's own: Ray's address,
# the cache and Tune storage in the bucket, the head's MLflow server. GIT_COMMIT (expanded by your
# shell, where the checkout's .git is; `ray up` does not sync .git) is recorded as the runs'
# git_commit tag.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cluster.env"
project=$(dirname "$here")
sweep=$(printf '%q ' "$@")
entrypoint="cd $(printf %q "$project") && exec python -m orchestrator.sweep ${sweep}--address auto \
--cache-dir s3://$EXPERIMENT_BUCKET/cache --storage-path s3://$EXPERIMENT_BUCKET/ray_results \
--tracking-uri http://127.0.0.1:5000"
exec ray job submit --address http://127.0.0.1:8265 --no-wait \
  --entrypoint-resources '{"head": 0.01}' \
  --runtime-env-json "{\"env_vars\": {\"GIT_COMMIT\": \"${GIT_COMMIT:-unknown}\"}}" \
  -- "$entrypoint"
