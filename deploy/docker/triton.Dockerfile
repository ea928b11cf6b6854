# Triton Inference Server with the homesearch encoder models (production path).
# NVIDIA's image provides tritonserver + the Python backend; we add the models' Python
# deps and the model repository templates. Build from the repository root:
#   docker build -f deploy/docker/triton.Dockerfile -t homesearch-triton .
# Pinned to 25.08 (Triton 2.60): NVIDIA's August 2025 bulletin fixed Python-backend flaws
# (CVE-2025-23319, -23320, -23334: out-of-bounds write / memory exhaustion / info leak via
# crafted requests) in 25.07; 24.10 (Triton 2.51, what the nvidia-pytriton wheel bundles for
# `homesearch up`) is affected. The wheel's server binds 127.0.0.1 only and restricts its
# admin APIs; in production use this image.
FROM nvcr.io/nvidia/tritonserver:25.08-py3

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HOMESEARCH_MODEL_CACHE=/cache/models \
    HOMESEARCH_LOG_FORMAT=json

WORKDIR /opt/homesearch
COPY requirements.lock pyproject.toml README.md ./
COPY protos protos
COPY homesearch homesearch
COPY services services
COPY gateway gateway
COPY bench bench
# CUDA build of torch (25.08's default python is 3.12); numpy<2 per the backend notes.
RUN pip install --constraint requirements.lock -e ".[models]" "tritonclient[grpc]"

COPY deploy/docker/triton-entrypoint.sh /usr/local/bin/triton-entrypoint.sh
RUN chmod +x /usr/local/bin/triton-entrypoint.sh

EXPOSE 8000 8001 8002
VOLUME ["/cache"]
ENTRYPOINT ["/usr/local/bin/triton-entrypoint.sh"]
