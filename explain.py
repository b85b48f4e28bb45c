"""Explains your own photos: `python explain.py --workdir=outputs/quickstart cat.jpg`.

The same program as the installed `dre-explain`: `dre_jax/cli/explain.py`.
"""

from dre_jax.cli import explain

if __name__ == "__main__":
  explain.run()
