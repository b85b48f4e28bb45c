"""From per-image arrays to the numbers of the paper's tables (Sec. 4.2).

`summarise(per_method, common, ...)` gives, per method, the summary of every
metric of `scoring.METRICS`: the mean raw M_F, the mean M_E (Table 4), the
mean skewness of the maps (moment and median coefficients), the tie-breaker's
effect, the mean insertion curve; and seconds per image (Table 2's cost,
measured). Means skip NaN: images whose map was not finite (counted), images
without a box (M_E), and, for the normalised M_F, images on which every
method of the pool scored the same.

Normalised M_F (Sec. 4.2.1): per image, min-max over the methods of one
table, then the mean. The paper's Tables 3 and 5 normalise over DRE and its
nine baselines; the pools are `config.eval.pools` (by default that table,
and DRE+ with what it is built from, DRE, DRE+ (self-based), DRE+
(MGnet-based), MGnet, in a table of its own). A method's
`faithfulness_normalised` is that of the first pool it is in; every pool's
value and rank are under `pools`. A method in no pool, or collapsed
(`sanity.collapse`, flagged as `collapsed`), has no normalised M_F and no
rank; nor has a method that failed the randomisation test
(`sanity.randomisation_checks`, when run: the reason is its `collapsed` flag,
its correlations are under `sanity`).

Against DRE (`statistics.compare`): for each other method and each metric of
`COMPARED`, the mean per-image difference DRE minus the method, its seeded
paired percentile bootstrap interval and win / tie / loss counts over the
images (`versus_dre`); the normalised M_F only within a pool holding both.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from dre_jax.evaluation import sanity
from dre_jax.evaluation import scoring
from dre_jax.evaluation import statistics
from dre_jax.explainers.registry import PROPOSED

SKEWNESS_FORMULA = (
    "Pearson's moment coefficient E[(z - mu)^3] / sigma^3 of each map "
    "(population, scipy.stats.skew(bias=True)); median_skewness: Pearson's "
    "median coefficient 3 (mean - median) / sigma (Doane & Seward 2011)")
# The method the others are compared with (`versus_dre`): the paper's own.
REFERENCE = PROPOSED
# The per-image metrics compared with DRE, in the tables' order.
COMPARED = ("faithfulness_normalised", "faithfulness", "explainability")
# The pool of every evaluated method, when no pools are given.
ALL = "all"


def _rank(means: dict[str, float | None]) -> dict[str, int | None]:
  """1 = the highest mean; None for a method without one."""
  ordered = sorted((m for m, v in means.items() if v is not None),
                   key=lambda m: -means[m])
  return {m: (ordered.index(m) + 1 if m in ordered else None) for m in means}


def summarise(per_method: dict[str, dict[str, Any]], common: dict[str, np.ndarray],
              *, labels_match: bool, settings: dict[str, dict[str, Any]] | None = None,
              pools: Mapping[str, Sequence[str]] | None = None,
              resamples: int = statistics.DEFAULT_RESAMPLES, seed: int = 0,
              sanity_checks: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """(results["methods"] and friends, per-image arrays for `per_image.npz`).

  pools: {name: methods} normalised together (`config.eval.pools`); None or
  empty: one pool of every evaluated method. resamples, seed: the bootstrap's.
  sanity_checks: `sanity.randomisation_checks`' result, or None (not run).
  """
  pools = dict(pools) if pools else {ALL: list(per_method)}
  checks = (sanity_checks or {}).get("methods", {})
  collapsed = {name: (sanity.collapse(a, sanity.output_kind(name))
                      or sanity.failure(checks.get(name)))
               for name, a in per_method.items()}
  num = len(common["index"])
  normalised_keys = [f"{m.name}_normalised" for m in scoring.METRICS if m.normalised]
  by_pool: dict[str, dict[str, dict[str, np.ndarray]]] = {}  # pool -> method -> key -> [N]
  pool_info = []
  for pool, wanted in pools.items():
    members = [m for m in per_method if m in wanted and not collapsed[m]]
    values = (scoring.normalised({m: per_method[m] for m in members})
              if members else {})
    by_pool[pool] = {m: {k: v[i] for k, v in values.items()}
                     for i, m in enumerate(members)}
    first = next(iter(values.values()), np.full((1, num), np.nan))[0]
    pool_info.append({
        "name": pool, "methods": members,
        "collapsed": [m for m in per_method if m in wanted and collapsed[m]],
        "not_evaluated": [m for m in wanted if m not in per_method],
        "images": int(np.isfinite(first).sum())})
  primary = {name: next((p for p in by_pool if name in by_pool[p]), None)
             for name in per_method}

  per_image: dict[str, np.ndarray] = {
      "index": common["index"], "target": common["target"],
      "label": common["label"]}
  out: dict[str, Any] = {}
  for name, a in per_method.items():
    out[name] = scoring.summarise_method(a)
    for key in scoring.names():
      per_image[f"{name}/{key}"] = a[key]
    for key in normalised_keys:
      values = (by_pool[primary[name]][name][key] if primary[name]
                else np.full(num, np.nan))
      out[name][key] = scoring.mean(values)
      per_image[f"{name}/{key}"] = values.astype(np.float32)
    out[name]["collapsed"] = collapsed[name]
    out[name]["pool"] = primary[name]
    out[name]["pools"] = {}
    out[name]["seconds_per_image"] = a["seconds"] / max(a["rows_processed"], 1)
    out[name]["settings"] = (settings or {}).get(name, {})
    if name in checks:
      out[name]["sanity"] = checks[name]
  for pool, members in by_pool.items():
    for key in normalised_keys:
      means = {m: scoring.mean(v[key]) for m, v in members.items()}
      ranks = _rank(means)
      for m in members:
        out[m]["pools"].setdefault(pool, {})[key] = means[m]
        out[m]["pools"][pool][f"{key}_rank"] = ranks[m]

  if REFERENCE in per_method:
    for name in per_method:
      if name == REFERENCE:
        continue
      versus = {}
      for key in COMPARED:
        if key in normalised_keys:
          shared = next((p for p in by_pool
                         if REFERENCE in by_pool[p] and name in by_pool[p]), None)
          pair = ((by_pool[shared][REFERENCE][key], by_pool[shared][name][key])
                  if shared else None)
        else:
          pair = per_method[REFERENCE][key], per_method[name][key]
        versus[key] = (statistics.compare(*pair, resamples=resamples, seed=seed)
                       if pair else None)
        if key in normalised_keys and versus[key]:
          versus[key]["pool"] = shared
      out[name]["versus_dre"] = versus
  summary = {
      "methods": out,
      # the pools of the normalised means (M_F's, Tables 3 and 5)
      "pools": pool_info,
      "normalised_images": pool_info[0]["images"] if pool_info else 0,
      "bootstrap": {"resamples": resamples, "seed": seed,
                    "confidence": statistics.CONFIDENCE,
                    "tie_tolerance": statistics.TIE_TOLERANCE,
                    "reference": REFERENCE},
      "collapse_rule": sanity.RULE,
      "classifier_accuracy": (float(np.mean(common["target"] == common["label"]))
                              if labels_match else None),
      "skewness_formula": SKEWNESS_FORMULA,
  }
  if sanity_checks:
    summary["sanity"] = {k: v for k, v in sanity_checks.items() if k != "methods"}
  return summary, per_image
