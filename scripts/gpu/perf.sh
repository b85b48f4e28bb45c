#!/bin/bash
# The performance measurements on a lent GPU, in one call of the device tool
# (results/gpu_perf.md reads what they write):
#   source scripts/gpu/setup.sh .whl && bash scripts/gpu/perf.sh $OUT
# 1. XPert and the vanilla gradient against batched forward + input gradients
#    (not yet measured on a GPU with XPert's area term by selection).
# 2. where XPert's time goes, 16 images per iteration (benchmarks/bench_xpert.py).
# 3. chip peak; classifier forward and DRE explanation at batch 256 in float32
#    (TF32) and bfloat16 for ResNet50 and EfficientNet-Lite0, Lite0 with its
#    depthwise convolutions in both forms; M_F + M_E (the evaluation's metric
#    programs) at batch 256, same grid (results/gpu_perf.md has one H200 run).
# 4. the depthwise layers of Lite0 one by one, both forms (benchmarks/bench_depthwise.py).
# Each writes its JSON as it goes, so a run stopped by its time limit keeps
# what it measured.
OUT=${1:?usage: perf.sh OUT_DIR}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit \
  --format=csv,noheader
python3 scripts/gpu/bench.py --out="$OUT/perf_xpert.json" --parts=explainers \
  --methods=vgrad,xpert --archs=efficientnet_lite0,resnet50 --explainer_batch=32 \
  --chunk=256 --loop_images=2 --reps=3 --threads=16
for arch in efficientnet_lite0 resnet50; do
  python3 benchmarks/bench_xpert.py --arch $arch --images 16 --iterations 20 --reps 3 \
    --random_weights --out "$OUT/bench_xpert_gpu_$arch"
done
python3 scripts/gpu/bench.py --out="$OUT/perf_models.json" --parts=peak,dre,metrics \
  --archs=resnet50,efficientnet_lite0,efficientnet_lite0@slices --batches=256 \
  --dtypes=float32,bfloat16 --reps=10 --threads=16
python3 benchmarks/bench_depthwise.py --batch_size 64 --out "$OUT/bench_depthwise_gpu.md"
