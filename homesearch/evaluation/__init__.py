"""Offline and through-the-services relevance evaluation (metrics, held-out split, baselines, fusion study)."""
