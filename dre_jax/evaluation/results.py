"""From per-image arrays to the numbers of the paper's tables (Sec. 4.2).

`summarise(per_method, common, ...)` gives, per method: the mean raw M_F and
the mean of the per-image min-max normalised M_F across the evaluated methods
(Tables 3 and 5 report the normalised means), the mean M_E (Table 4), the mean
skewness of the maps (moment and median coefficients), seconds per image
(Table 2's cost, measured), the tie-breaker's effect, the mean insertion
curve. Means skip NaN: images whose map was not finite (counted), images
without a box (M_E), and, for the normalised M_F, images on which every
method scored the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dre_jax import metrics

SKEWNESS_FORMULA = (
    "Pearson's moment coefficient E[(z - mu)^3] / sigma^3 of each map "
    "(population, scipy.stats.skew(bias=True)); median_skewness: Pearson's "
    "median coefficient 3 (mean - median) / sigma (Doane & Seward 2011)")


def _mean(values: np.ndarray) -> float | None:
  values = np.asarray(values, np.float64)
  ok = np.isfinite(values)
  return float(values[ok].mean()) if ok.any() else None


def summarise(per_method: dict[str, dict[str, Any]], common: dict[str, np.ndarray],
              *, labels_match: bool, settings: dict[str, dict[str, Any]] | None = None
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """(results["methods"] and friends, per-image arrays for `per_image.npz`)."""
  names = list(per_method)
  raw = np.stack([per_method[n]["faithfulness"] for n in names])
  normalised = (metrics.normalise_across_methods(raw) if len(names) > 1
                else np.full_like(raw, np.nan))
  per_image: dict[str, np.ndarray] = {
      "index": common["index"], "target": common["target"],
      "label": common["label"]}
  out: dict[str, Any] = {}
  for i, name in enumerate(names):
    a = per_method[name]
    finite = a["finite"].astype(bool)
    untied = np.isfinite(a["faithfulness_untied"])
    effect = None
    if untied.any():
      with_tb = float(np.mean(a["faithfulness"][untied]))
      without = float(np.mean(a["faithfulness_untied"][untied]))
      effect = {"images": int(untied.sum()), "with": with_tb,
                "without": without, "delta": with_tb - without}
    curves = a["curve"][finite]
    out[name] = {
        "images": int(finite.sum()),
        "nonfinite_maps": int((~finite).sum()),
        "faithfulness": _mean(a["faithfulness"]),
        "faithfulness_normalised": _mean(normalised[i]),
        "explainability": _mean(a["explainability"]),
        "skewness": _mean(a["skewness"]),
        "median_skewness": _mean(a["median_skewness"]),
        "tied_fraction": _mean(a["tied_fraction"]),
        "tie_break_effect": effect,
        "seconds_per_image": a["seconds"] / max(a["rows_processed"], 1),
        "mean_curve": curves.mean(axis=0).tolist() if len(curves) else None,
        "settings": (settings or {}).get(name, {}),
    }
    for key in ("curve", "faithfulness", "faithfulness_untied", "explainability",
                "skewness", "median_skewness", "tied_fraction", "finite"):
      per_image[f"{name}/{key}"] = a[key]
    per_image[f"{name}/faithfulness_normalised"] = normalised[i].astype(np.float32)
  summary = {
      "methods": out,
      "normalised_images": int(np.isfinite(normalised[0]).sum()),
      "classifier_accuracy": (float(np.mean(common["target"] == common["label"]))
                              if labels_match else None),
      "skewness_formula": SKEWNESS_FORMULA,
  }
  return summary, per_image
