"""Workload-agnostic machinery: config, corpora, extraction, cache, training, retrieval, tracking."""
