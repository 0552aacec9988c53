#!/usr/bin/env bash
# tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# (the environment as for tools/dist_train.sh)
HERE=$(cd "$(dirname "$0")" && pwd)
exec bash "$HERE/dist_launch.sh" "$3" "$HERE/test.py" "$1" "$2" --launcher pytorch "${@:4}"
