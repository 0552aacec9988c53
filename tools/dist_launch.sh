#!/usr/bin/env bash
# tools/dist_launch.sh GPUS SCRIPT [args...]: torchrun SCRIPT on GPUS processes
# per node, what tools/dist_train.sh and tools/dist_test.sh run. Several
# nodes: set NNODES, NODE_RANK, MASTER_ADDR and PORT on each node. PYTHON
# (default: python) is the interpreter.
GPUS=$1
SCRIPT=$2
HERE=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$HERE/..":$PYTHONPATH \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$GPUS" --master_port="${PORT:-29500}" \
    "$SCRIPT" "${@:3}"
