#!/usr/bin/env bash
# Regenerates the Python stubs for protos/homesearch/v1/*.proto into homesearch/v1/
# (the one place generated code lives). Uses the pinned grpcio-tools from the venv
# so the output is reproducible; tests/test_protos.py checks it is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m grpc_tools.protoc -I protos \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  protos/homesearch/v1/*.proto
