r"""The results tables of docs/results.md from an evaluate.py report.

    python scripts/reference_table.py runs/lite0_128/eval/results.json

One row per method, laid out like the paper's Tables 3 and 4 for one
classifier: M_F normalised across the evaluated methods and raw, M_E, the
coefficient of skewness (CoS: Pearson's moment coefficient; the median one in
parentheses), measured seconds per image, and each method's rank here and in
the paper (ImageNet MEAN columns of Tables 3 and 4), so the orderings can be
compared although the data differ.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

# The paper's ImageNet MEAN columns (Table 3: M_F normalised; Table 4: M_E).
PAPER_MF = {"dre": 74.37, "mgnet": 55.75, "mpert": 70.10, "finv": 65.18,
            "xpert": 60.87, "gcam": 67.51, "gcam++": 66.94, "vgrad": 15.93,
            "smgrad": 35.03, "itgrad": 26.73}
PAPER_ME = {"dre": 82.89, "mgnet": 82.67, "mpert": 73.07, "finv": 74.39,
            "xpert": 76.97, "gcam": 78.79, "gcam++": 83.51, "vgrad": 67.97,
            "smgrad": 72.50, "itgrad": 65.64}
LABELS = {"dre": "DRE", "dre+self": "DRE+ (self)", "dre+mgnet": "DRE+ (MGnet)",
          "mgnet": "MGnet", "mpert": "MPert", "finv": "FInv", "xpert": "XPert",
          "gcam": "GCAM", "gcam++": "GCAM++", "vgrad": "VGrad", "smgrad": "SMGrad",
          "itgrad": "ITGrad"}
ORDER = ("dre", "dre+self", "dre+mgnet", "mgnet", "mpert", "finv", "xpert",
         "gcam", "gcam++", "vgrad", "smgrad", "itgrad")


def ranks(values: dict[str, float]) -> dict[str, int]:
  """1 = highest; NaN values get no rank."""
  finite = sorted((v, k) for k, v in values.items() if not math.isnan(v))
  return {k: i + 1 for i, (_, k) in enumerate(reversed(finite))}


def table(results: dict) -> str:
  methods = [m for m in ORDER if m in results["methods"]] + sorted(
      set(results["methods"]) - set(ORDER))
  r = results["methods"]
  get = lambda m, k: float(r[m].get(k, float("nan")))  # noqa: E731
  mf_rank = ranks({m: get(m, "faithfulness_normalised") for m in methods})
  me_rank = ranks({m: get(m, "explainability") for m in methods})
  paper = [m for m in methods if m in PAPER_MF]
  paper_mf = ranks({m: PAPER_MF[m] for m in paper})
  paper_me = ranks({m: PAPER_ME[m] for m in paper})
  lines = ["| method | M_F normalised | M_F raw | M_E | CoS (median CoS) | s / image "
           "| rank M_F (paper) | rank M_E (paper) |",
           "|---|---|---|---|---|---|---|---|"]
  for m in methods:
    lines.append(
        f"| {LABELS.get(m, m)} | {get(m, 'faithfulness_normalised'):.2f} | "
        f"{get(m, 'faithfulness'):.2f} | {get(m, 'explainability'):.2f} | "
        f"{get(m, 'skewness'):.2f} ({get(m, 'median_skewness'):.2f}) | "
        f"{get(m, 'seconds_per_image'):.3g} | "
        f"{mf_rank.get(m, '-')} ({paper_mf.get(m, '-')}) | "
        f"{me_rank.get(m, '-')} ({paper_me.get(m, '-')}) |")
  s = results["sample"]
  lines += ["", f"{results['num_images']} images of {s['dataset']}/{s['split']} "
            f"(seeded sample, seed {s['seed']}, {results['image_size']} px), "
            f"{results['arch']}; normalised M_F over {results.get('normalised_images', '?')} "
            "images (those where the methods' M_F differ). Ranks among the methods "
            "above; the paper's among the nine baselines and DRE (ImageNet MEAN)."]
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("results", help="an eval/results.json of evaluate.py")
  args = parser.parse_args(argv)
  try:
    with open(args.results) as f:
      results = json.load(f)
  except (OSError, ValueError) as e:
    sys.exit(f"reference_table.py: cannot read {args.results} ({e}); pass the "
             "results.json that evaluate.py wrote under <workdir>/eval/")
  sys.stdout.write(table(results))


if __name__ == "__main__":
  main()
