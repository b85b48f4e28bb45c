"""Trains DRE: `python train.py --config=configs/cub_resnet.py --workdir=...`.

The same program as the installed `dre-train`: `dre_jax/cli/train.py`.
"""

from dre_jax.cli import train

if __name__ == "__main__":
  train.run()
