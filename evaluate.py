"""Evaluates a trained workdir: `python evaluate.py --workdir=runs/cub_resnet`.

The same program as the installed `dre-evaluate`: `dre_jax/cli/evaluate.py`.
"""

from dre_jax.cli import evaluate

if __name__ == "__main__":
  evaluate.run()
