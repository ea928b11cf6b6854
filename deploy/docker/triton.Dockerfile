# Triton Inference Server with the homesearch encoder models (production path).
# NVIDIA's image provides tritonserver + the Python backend (same 2.51 release as
# the nvidia-pytriton wheel used on one machine); we add the models' Python deps
# and the model repository templates. Build from the repository root:
#   docker build -f deploy/docker/triton.Dockerfile -t homesearch-triton .
FROM nvcr.io/nvidia/tritonserver:24.10-py3

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
# CUDA build of torch (the image's default python is 3.10); numpy<2 per the backend notes.
RUN pip install --constraint requirements.lock -e ".[models]" "tritonclient[grpc]"

COPY deploy/docker/triton-entrypoint.sh /usr/local/bin/triton-entrypoint.sh
RUN chmod +x /usr/local/bin/triton-entrypoint.sh

EXPOSE 8000 8001 8002
VOLUME ["/cache"]
ENTRYPOINT ["/usr/local/bin/triton-entrypoint.sh"]
