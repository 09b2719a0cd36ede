#!/usr/bin/env bash
# What tools/dist_train.sh and tools/dist_test.sh share: run a pvt_det tool under torchrun
# (mmengine's pytorch launcher, DDP; gloo on CPU).   tools/torchrun.sh NPROC TOOL.py ARGS...
# Environment: NNODES, NODE_RANK, PORT, MASTER_ADDR for several nodes; PYTHON for the interpreter
# (default: the project's .venv/bin/python when it exists, else `python`; see find_python.sh).
set -euo pipefail
NPROC=$1
TOOL=$2
TOOLS_DIR=$(dirname "$0")
source "$TOOLS_DIR/find_python.sh"
PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$TOOLS_DIR/$TOOL" "${@:3}" --launcher pytorch
