#!/usr/bin/env bash
# tools/dist_train.sh CONFIG GPUS [train.py args...]
# One node: torchrun starts GPUS processes. Several nodes: set NNODES,
# NODE_RANK, MASTER_ADDR and PORT on each node. On a machine without GPUs the
# processes train on the CPU with the gloo backend. PYTHON (default: python)
# is the interpreter.
HERE=$(cd "$(dirname "$0")" && pwd)
exec bash "$HERE/dist_launch.sh" "$2" "$HERE/train.py" "$1" --launcher pytorch "${@:3}"
