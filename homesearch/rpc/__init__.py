"""gRPC plumbing every service shares: server scaffolding (health, reflection, interceptors), health probes."""
