"""One package per reproduced paper; each registers itself in :mod:`orchestrator.workload`."""
