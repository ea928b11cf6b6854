"""The public gateway: SearchService.Search with API keys, rate limits, validation and
deadline propagation in front of the ranking service (``homesearch gateway``)."""
