"""Structured JSON logs and Prometheus metrics, shared by every service."""
