"""Bulk catalog tooling: JSONL reader, image loader and the ``homesearch index``/``delete`` CLIs."""
