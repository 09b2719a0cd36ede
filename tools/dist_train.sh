#!/usr/bin/env bash
# Distributed training with torchrun (DDP): tools/dist_train.sh CONFIG GPUS [train.py options]
# Without CUDA the processes train on the CPU over the gloo backend (GPUS = process count).
# Several nodes: set NNODES, NODE_RANK, MASTER_ADDR and PORT.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 CONFIG GPUS [train.py options]" >&2; exit 2; }
exec "$(dirname "$0")/torchrun.sh" "$2" train.py "$1" "${@:3}"
