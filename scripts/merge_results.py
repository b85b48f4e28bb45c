r"""Evaluations of the same seeded images merged into one table.

    python scripts/merge_results.py runs/a/eval runs/b/eval --out results/merged
    python scripts/reference_table.py results/merged/results.json

Each argument is a directory that evaluate.py wrote (`<workdir>/eval`, or a
copy under results/) holding results.json and per_image.npz. The runs must
have evaluated the same sample with the same protocol; their methods are
summarised together (pools, ranks, DRE minus each method with its paired
bootstrap interval) as one run of every method would be
(`dre_jax.evaluation.merge`). Writes results.json, per_image.npz and tables.md
to --out. A method several runs evaluated is taken from the first named, and
the largest difference of its per-image M_F and M_E in the others is printed.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dre_jax.evaluation import merge  # noqa: E402
from dre_jax.evaluation import report  # noqa: E402


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("runs", nargs="+", help="directories evaluate.py wrote (<workdir>/eval)")
  parser.add_argument("--out", required=True, help="directory for the merged results")
  args = parser.parse_args(argv)
  try:
    runs = [merge.load(path) for path in args.runs]
    merged, per_image = merge.merge(runs)
  except (OSError, ValueError, KeyError) as e:
    message = e.args[0] if e.args else str(e)
    print(f"merge_results.py: {message}", file=sys.stderr)
    return 2
  os.makedirs(args.out, exist_ok=True)
  report.write_results(args.out, merged, per_image)
  for name, others in merged["duplicates"].items():
    for path, diff in others.items():
      print(f"[merge] {name}: taken from {merged['methods'][name]['evaluated_in']}; "
            f"in {path} its per-image M_F and M_E differ by at most {diff:.3g}")
  print(f"[merge] {len(merged['methods'])} methods on {merged['num_images']} images -> "
        f"{args.out}/results.json, per_image.npz, tables.md")
  return 0


if __name__ == "__main__":
  sys.exit(main())
