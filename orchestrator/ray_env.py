"""Process setup for the Ray instance a sweep starts on this machine.

Ray's state API, which Ray Train's placement-group cleaner calls from its own actor, finds its
cluster by looking for GCS processes on the machine when ``RAY_ADDRESS`` is unset. With a second
local Ray instance running (two sweeps on one workstation), it raises "Found multiple active Ray
instances"; the cleaner's thread dies, the placement group of a trial ASHA stopped is never
removed, and the next trial waits forever for that CPU. Every worker of a Ray instance the sweep
starts therefore gets its own instance's address.
"""

from __future__ import annotations

import os

SETUP_HOOK = "orchestrator.ray_env.pin_ray_address"


def pin_ray_address() -> None:
    """``worker_process_setup_hook``: point this worker's state-API calls at its own cluster."""
    import ray

    os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)
