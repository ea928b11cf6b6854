"""The back-end services, one folder each: ``services.encoders`` (text and image towers on Triton)
and ``services.ranking`` (fusion/ranking, index, cache, catalog ingestion)."""
