r"""The results tables of docs/results.md from an evaluate.py report.

    python scripts/reference_table.py runs/lite0_128/eval/results.json

One row per method, laid out like the paper's Tables 3 and 4 for one
classifier: M_F normalised within the method's pool (`config.eval.pools`) and
raw, M_E, the coefficient of skewness (CoS: Pearson's moment coefficient; the
median one in parentheses), measured seconds per image, and each method's rank
here (within its pool, collapsed methods not ranked) and in the paper
(ImageNet MEAN columns of Tables 3 and 4), so the orderings can be compared
although the data differ. Then DRE minus each method with its paired bootstrap
interval, and who is ahead where the interval excludes zero.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dre_jax import explainers  # noqa: E402
from dre_jax.evaluation import statistics  # noqa: E402
from dre_jax.evaluation import tables  # noqa: E402


def _paper(method: str, metric: str) -> float | None:
  """The paper's ImageNet MEAN (Table 3: M_F normalised; Table 4: M_E)."""
  paper = explainers.method(method).paper if method in explainers.names() else None
  return getattr(paper, metric) if paper else None


def ranks(values: dict[str, float]) -> dict[str, int]:
  """1 = highest; NaN values get no rank."""
  finite = sorted((v, k) for k, v in values.items() if not math.isnan(v))
  return {k: i + 1 for i, (_, k) in enumerate(reversed(finite))}


def _fmt(value: float) -> str:
  return "-" if math.isnan(value) else f"{value:.2f}"


def _verdict(c: dict | None, method: str) -> str:
  """DRE minus method with its interval: who is ahead, or "level"."""
  if not c:
    return "-"
  who = ("level" if c["level"] else
         "DRE" if c["difference"] > 0 else tables.display_name(method))
  return f"{statistics.text(c)}: {who}"


def table(results: dict) -> str:
  """The means table (ranks within each method's normalisation pool among the
  methods that did not collapse) and the paired intervals of DRE minus each
  method."""
  methods = tables.table2_order(results["methods"])
  r = results["methods"]
  get = lambda m, k: float("nan" if r[m].get(k) is None else r[m][k])  # noqa: E731
  collapsed = {m for m in methods if r[m].get("collapsed")}
  pool_of = {m: r[m].get("pool") for m in methods}
  mf_rank, me_rank = {}, {}
  for pool in dict.fromkeys(pool_of.values()):
    ranked = [m for m in methods if pool_of[m] == pool and m not in collapsed]
    mf_rank.update(ranks({m: get(m, "faithfulness_normalised") for m in ranked}))
    me_rank.update(ranks({m: get(m, "explainability") for m in ranked}))
  paper = [m for m in methods if _paper(m, "faithfulness") is not None]
  paper_mf = ranks({m: _paper(m, "faithfulness") for m in paper})
  paper_me = ranks({m: _paper(m, "explainability") for m in paper})
  lines = ["| method | M_F normalised | M_F raw | M_E | CoS (median CoS) | s / image "
           "| rank M_F (paper) | rank M_E (paper) |",
           "|---|---|---|---|---|---|---|---|"]
  for m in methods:
    name = tables.display_name(m) + (" (collapsed: not ranked)" if m in collapsed else "")
    lines.append(
        f"| {name} | {_fmt(get(m, 'faithfulness_normalised'))} | "
        f"{_fmt(get(m, 'faithfulness'))} | {_fmt(get(m, 'explainability'))} | "
        f"{get(m, 'skewness'):.2f} ({get(m, 'median_skewness'):.2f}) | "
        f"{get(m, 'seconds_per_image'):.3g} | "
        f"{mf_rank.get(m, '-')} ({paper_mf.get(m, '-')}) | "
        f"{me_rank.get(m, '-')} ({paper_me.get(m, '-')}) |")
  s = results["sample"]
  lines += ["", f"{results['num_images']} images of {s['dataset']}/{s['split']} "
            f"(seeded sample, seed {s['seed']}, {results['image_size']} px), "
            f"{results['arch']}; normalised M_F over {results.get('normalised_images', '?')} "
            "images (those where the methods' M_F differ)."]
  for pool in results.get("pools", ()):
    evaluated = [tables.display_name(m) for m in pool["methods"]]
    if evaluated:
      lines.append(f"Pool `{pool['name']}` (min-max per image, ranks within it): "
                   + ", ".join(evaluated)
                   + (f"; not evaluated: {', '.join(map(tables.display_name, pool['not_evaluated']))}"
                      if pool.get("not_evaluated") else "") + ".")
  lines.append("The paper's ranks are among DRE and the nine baselines (ImageNet MEAN).")
  for run in results.get("merged_from", ()):
    lines.append(f"Merged (`scripts/merge_results.py`): {', '.join(map(tables.display_name, run['methods']))} "
                 f"from `{run['path']}`.")
  for name, others in results.get("duplicates", {}).items():
    for path, diff in others.items():
      lines.append(f"{tables.display_name(name)} was evaluated again in `{path}`: its per-image "
                   f"M_F and M_E there differ by at most {diff:.3g}.")
  versus = [m for m in methods if r[m].get("versus_dre")]
  if versus:
    b = results.get("bootstrap", {})
    lines += ["", "| DRE minus | M_F normalised | M_F raw | M_E |", "|---|---|---|---|"]
    for m in versus:
      v = r[m]["versus_dre"]
      lines.append(f"| {tables.display_name(m)} | "
                   + " | ".join(_verdict(v.get(k), m) for k in
                                ("faithfulness_normalised", "faithfulness",
                                 "explainability")) + " |")
    lines += ["", f"Mean per-image difference, paired percentile bootstrap "
              f"{b.get('confidence', 0.95):.0%} interval ({b.get('resamples', '?')} "
              "resamples), DRE's wins/ties/losses; who is ahead where the interval "
              "excludes zero, else \"level\". Normalised M_F only within a shared pool."]
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
