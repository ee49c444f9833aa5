#!/bin/sh
# NCCL's socket transport between ranks that share one GPU (validation/collect.py --share-gpu), on a 1-GPU machine:
# each rank gets its own NCCL_HOSTID, so NCCL takes the ranks for separate hosts and joins them over sockets on `lo`;
# under MPS the ranks' kernels run side by side. Phases (PHASES, default all):
#   scale  - every op on 2, 3, 4, 6 and 8 ranks, 8 B - 256 MiB
#   pairs  - one 2-rank job alone, then two 2-rank jobs at once (all_gather, then broadcast, 256 MiB, long loops)
# Usage: OUT=folder [PHASES="scale pairs"] [SCALE_WS=2,3,4,6,8] sh validation/probe_shared_gpu.sh ; everything ends up
# in $OUT/shared_gpu.tgz (SCALE_WS: the scale phase's world sizes, largest last)
set -u
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
D="$OUT/shared_gpu"; mkdir -p "$D"
C="python3 validation/collect.py --out $D --launch nccl_api --transports socket --share-gpu --variants none"
nvidia-smi --query-gpu=name,compute_mode,mig.mode.current --format=csv > "$D/gpu_settings_before.txt" 2>&1
export CUDA_MPS_PIPE_DIRECTORY="/tmp/gpusim_mps_pipe" CUDA_MPS_LOG_DIRECTORY="$D/mps_log"
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
nvidia-cuda-mps-control -d && echo "MPS control daemon started"
for phase in ${PHASES:-scale pairs}; do
  case $phase in
  scale)
    WS=${SCALE_WS:-2,3,4,6,8}
    $C --tag scale --nproc "${WS##*,}" --world-sizes "$WS" --max-bytes 256MiB --trials 3 --target-ms 20 \
       --deadline-s ${SCALE_S:-330} ;;
  pairs)
    for op in all_gather broadcast; do
      $C --tag alone_$op --no-system --no-nccl-info --nproc 2 --world-sizes 2 --ops $op --sizes 256MiB \
         --trials 5 --target-ms 300 --deadline-s 60
      $C --tag busy_$op --no-system --no-nccl-info --nproc 2 --world-sizes 2 --ops $op --sizes 256MiB \
         --trials 40 --target-ms 300 --deadline-s 90 > "$D/busy_$op.log" 2>&1 &
      sleep 3
      $C --tag together_$op --no-system --no-nccl-info --nproc 2 --world-sizes 2 --ops $op --sizes 256MiB \
         --trials 5 --target-ms 300 --deadline-s 60
      wait
    done ;;
  esac
done
echo quit | nvidia-cuda-mps-control
sleep 1
rm -rf "$CUDA_MPS_PIPE_DIRECTORY"
nvidia-smi --query-gpu=name,compute_mode,mig.mode.current --format=csv > "$D/gpu_settings_after.txt" 2>&1
tar -C "$OUT" -czf "$OUT/shared_gpu.tgz" shared_gpu && rm -rf "$D"
