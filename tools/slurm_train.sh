#!/usr/bin/env bash
# Train on a SLURM cluster: one task per GPU (or per CPU process).
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# Environment: GPUS (total tasks, default 8), GPUS_PER_NODE (default 8; set
# 0 on CPU-only nodes: no --gres), CPUS_PER_TASK (default 5), SRUN_ARGS,
# PORT (rendezvous port, default 29500).  Resume a killed job by
# submitting it again with --resume.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
DIR=$(cd "$(dirname "$0")" && pwd)
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    GRES="--gres=gpu:$GPUS_PER_NODE"
    TASKS_PER_NODE=$GPUS_PER_NODE
else
    GRES=""
    TASKS_PER_NODE=$GPUS
fi

export MASTER_PORT=${PORT:-29500}
# shellcheck disable=SC2086  # SRUN_ARGS and GRES are word lists
PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    $GRES \
    --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$DIR/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher=slurm "${@:5}"
