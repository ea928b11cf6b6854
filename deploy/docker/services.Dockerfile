# Image for the homesearch Python services (gateway, ranking, catalog CLI).
# The encoders run in the Triton image (triton.Dockerfile), so no torch here.
# Build from the repository root:  docker build -f deploy/docker/services.Dockerfile .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOMESEARCH_LOG_FORMAT=json

RUN useradd --create-home --uid 10001 homesearch
WORKDIR /app

# Dependencies first (pinned by requirements.lock as constraints) for layer caching.
COPY requirements.lock pyproject.toml README.md ./
COPY homesearch/__init__.py homesearch/__init__.py
RUN pip install --constraint requirements.lock "grpcio" "grpcio-health-checking" "grpcio-reflection" \
      "protobuf" "prometheus-client" "pydantic-settings" "numpy" "pillow" "tqdm" \
      "qdrant-client" "qdrant-edge-py" "redis" "tritonclient[grpc]" "jieba" "opencc" "threadpoolctl"

COPY protos protos
COPY homesearch homesearch
# The encoders' code comes along for its gRPC client; their models run in the Triton image.
COPY services services
COPY gateway gateway
COPY bench bench
RUN pip install --no-deps --constraint requirements.lock -e .

USER homesearch
# Which service runs is the command: `homesearch gateway` or `homesearch ranking`.
ENTRYPOINT ["homesearch"]
CMD ["gateway"]
