#!/usr/bin/env bash
# Distributed testing with torchrun: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options]" >&2; exit 2; }
exec "$(dirname "$0")/torchrun.sh" "$3" test.py "$1" "$2" "${@:4}"
