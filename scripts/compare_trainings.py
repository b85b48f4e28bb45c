r"""DRE of two trainings, paired over the same images.

    python scripts/compare_trainings.py A/results.json B/results.json   # natural_photos.py
    python scripts/compare_trainings.py A/eval/per_image.npz B/eval/per_image.npz  # evaluate.py

Reads two results of `scripts/natural_photos.py` (per image size: the photos
and the composites) or two `per_image.npz` of `evaluate.py` (the same seeded
test images), and prints the first run's DRE minus the second's on M_E and
raw M_F for each image set both hold on the same images: the mean per-image
difference, its paired percentile bootstrap 95% interval
(`dre_jax.evaluation.statistics`) and the first run's wins/ties/losses;
"level" where the interval contains zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dre_jax.evaluation import statistics  # noqa: E402
from dre_jax.explainers.registry import PROPOSED  # noqa: E402

METRICS = (("explainability", "M_E"), ("faithfulness", "M_F raw"))


def rows(first: dict, second: dict, *, resamples: int, seed: int) -> list[str]:
  """Markdown rows: size, images, metric, first minus second."""
  out = []
  for size, a in first["sizes"].items():
    b = second["sizes"].get(size)
    for part in ("photos", "composites"):
      if not b or part not in a or part not in b:
        continue
      if a[part]["targets"] != b[part]["targets"] or (
          a.get("names") != b.get("names") and part == "photos"):
        raise ValueError(f"{size} px {part}: the two results are not of the "
                         "same images (rerun natural_photos.py with the same "
                         "--boxes and --composites)")
      for key, label in METRICS:
        c = statistics.compare(a[part]["scores"][PROPOSED][key],
                               b[part]["scores"][PROPOSED][key],
                               resamples=resamples, seed=seed)
        verdict = ("level" if c["level"] else
                   "first higher" if c["difference"] > 0 else "second higher")
        out.append(f"| {size} | {c['images']} {part} | {label} | "
                   f"{statistics.text(c)}: {verdict} |")
  return out


def read(path: str) -> dict:
  """A natural_photos.py results.json, or an evaluate.py per_image.npz in the
  same layout (size "eval", image set "composites", the images' indices as
  the targets that must match)."""
  if not path.endswith(".npz"):
    with open(path) as f:
      return json.load(f)
  with np.load(path) as f:
    scores = {k: f[f"{PROPOSED}/{k}"].tolist() for k, _ in METRICS}
    index = f["index"].tolist()
  return {"workdir": os.path.dirname(os.path.dirname(path)) or ".",
          "sizes": {"eval": {"names": index, "composites": {
              "targets": index, "scores": {PROPOSED: scores}}}}}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("first")
  parser.add_argument("second")
  parser.add_argument("--resamples", type=int, default=statistics.DEFAULT_RESAMPLES)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  results = []
  for path in (args.first, args.second):
    try:
      results.append(read(path))
    except (OSError, ValueError, KeyError) as e:
      sys.exit(f"compare_trainings.py: cannot read {path} ({e}); pass two "
               "results.json of scripts/natural_photos.py or two "
               "per_image.npz of evaluate.py")
  try:
    lines = rows(*results, resamples=args.resamples, seed=args.seed)
  except KeyError as e:
    sys.exit(f"compare_trainings.py: the results lack {e}; pass two results.json "
             "of scripts/natural_photos.py or two per_image.npz of evaluate.py")
  except ValueError as e:
    sys.exit(f"compare_trainings.py: {e}")
  print(f"| size | images | metric | DRE of {results[0]['workdir']} minus DRE of "
        f"{results[1]['workdir']} [95% interval] wins/ties/losses |")
  print("|---|---|---|---|")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
