#!/bin/bash
# index the full dev catalog, then: shopper photos (visual), the demo chair, English text fused vs text alone
cd /work/wt/h12
G="--gateway 127.0.0.1:52100"
T0=$(date +%s)
.venv/bin/homesearch index /work/shared/data/ikea/catalog.jsonl --ranking-addr 127.0.0.1:52101 --batch-size 32 --concurrency 1 --rpc-timeout-s 600 --json > /work/scratch/h12/index_full.json 2> /work/scratch/h12/index_full.err
echo "indexed in $(( $(date +%s) - T0 )) s"
E=".venv/bin/homesearch eval --catalog /work/shared/data/ikea/catalog.jsonl $G --timeout-s 120 --json"
$E --queries /work/shared/data/ikea/photos.jsonl --runs-out /work/scratch/h12/runs_photos.json > /work/scratch/h12/ev_photos.json 2>/work/scratch/h12/ev_photos.err
echo "photos done $(( $(date +%s) - T0 )) s"
.venv/bin/homesearch search --addr 127.0.0.1:52100 --image data/demo/queries/chair.jpg > /work/scratch/h12/chair.txt 2>&1
.venv/bin/homesearch search --addr 127.0.0.1:52100 --image data/demo/queries/pendant_lamp.jpg > /work/scratch/h12/lamp.txt 2>&1
echo done
