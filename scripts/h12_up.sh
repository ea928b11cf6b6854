#!/bin/bash
# up.sh NAME BASEPORT [extra args]: a stack on ports BASEPORT..BASEPORT+8, data in /work/scratch/h12/var-NAME
name=$1; b=$2; shift 2
cd /work/wt/h12
export HOMESEARCH_GATEWAY_RATE_LIMIT_RPS=0 HOMESEARCH_RANKING_ENCODER_TIMEOUT_S=300
exec nice -n 5 .venv/bin/homesearch up --data-dir /work/scratch/h12/var-$name --insecure-no-auth --skip-prepare \
  --gateway-port $b --ranking-port $((b+1)) --triton-grpc-port $((b+2)) --triton-http-port $((b+3)) \
  --triton-metrics-port $((b+4)) --valkey-port $((b+5)) --gateway-metrics-port 0 --ranking-metrics-port 0 "$@"
