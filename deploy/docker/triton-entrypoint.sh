#!/usr/bin/env bash
# Renders the runtime model repository for THIS container (KIND_GPU when CUDA is
# visible, KIND_CPU otherwise; instance counts and limits from HOMESEARCH_TRITON_*),
# converts/caches weights and exports the ONNX graphs on first start, then execs NVIDIA's
# tritonserver. HOMESEARCH_TRITON_SERVING_BACKEND=onnxruntime (set in compose/k8s) renders the
# native onnxruntime-backend repository (model_repository_onnxruntime/); python renders the
# python-backend one (model_repository/).
set -euo pipefail
REPO="${HOMESEARCH_TRITON_RENDERED_REPOSITORY:-/tmp/model_repository}"
homesearch triton --render-only "$REPO" --device "${HOMESEARCH_TRITON_DEVICE:-auto}"
# Admin APIs (log settings, model load/unload, traces, shared memory) need a header value no
# client is given: only ranking talks to Triton, for health, metadata and inference.
ADMIN="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
RESTRICTED="logging,model-repository,trace,shared-memory:homesearch-triton-admin=${ADMIN}"
exec tritonserver --model-repository="$REPO" \
  --http-port=8000 --grpc-port=8001 --metrics-port=8002 \
  --http-restricted-api="$RESTRICTED" --grpc-restricted-protocol="$RESTRICTED" \
  --allow-metrics=true --allow-gpu-metrics=true "$@"
