"""Benchmarks (``homesearch bench``). Suites live beside the engineers' own scripts
(``encoders.py``, ``index_ikea.py``); ``harness.py`` holds the shared statistics and rendering."""
