#!/usr/bin/env bash
# tools/dist_train.sh CONFIG GPUS [train.py args...]
# One node: torchrun starts GPUS processes. Several nodes: set NNODES,
# NODE_RANK, MASTER_ADDR and PORT on each node. On a machine without GPUs the
# processes train on the CPU with the gloo backend. PYTHON (default: python)
# is the interpreter.
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
HERE=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$HERE/..":$PYTHONPATH \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS --master_port=$PORT \
    "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
