"""Operations on the encoders: ``prepare`` converts and caches the bundled weights (``homesearch prepare-models``)."""
