"""From per-image arrays to the numbers of the paper's tables (Sec. 4.2).

`summarise(per_method, common, ...)` gives, per method, the summary of every
metric of `scoring.METRICS`: the mean raw M_F and the mean of the per-image
min-max normalised M_F across the evaluated methods (Tables 3 and 5 report the
normalised means), the mean M_E (Table 4), the mean skewness of the maps
(moment and median coefficients), the tie-breaker's effect, the mean insertion
curve; and seconds per image (Table 2's cost, measured). Means skip NaN:
images whose map was not finite (counted), images without a box (M_E), and,
for the normalised M_F, images on which every method scored the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dre_jax.evaluation import scoring

SKEWNESS_FORMULA = (
    "Pearson's moment coefficient E[(z - mu)^3] / sigma^3 of each map "
    "(population, scipy.stats.skew(bias=True)); median_skewness: Pearson's "
    "median coefficient 3 (mean - median) / sigma (Doane & Seward 2011)")


def summarise(per_method: dict[str, dict[str, Any]], common: dict[str, np.ndarray],
              *, labels_match: bool, settings: dict[str, dict[str, Any]] | None = None
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """(results["methods"] and friends, per-image arrays for `per_image.npz`)."""
  normalised = scoring.normalised(per_method)
  per_image: dict[str, np.ndarray] = {
      "index": common["index"], "target": common["target"],
      "label": common["label"]}
  out: dict[str, Any] = {}
  for i, (name, a) in enumerate(per_method.items()):
    out[name] = scoring.summarise_method(a)
    for key in scoring.names():
      per_image[f"{name}/{key}"] = a[key]
    for key, values in normalised.items():
      out[name][key] = scoring.mean(values[i])
      per_image[f"{name}/{key}"] = values[i].astype(np.float32)
    out[name]["seconds_per_image"] = a["seconds"] / max(a["rows_processed"], 1)
    out[name]["settings"] = (settings or {}).get(name, {})
  summary = {
      "methods": out,
      # the images that count in the normalised means (M_F's, Tables 3 and 5)
      "normalised_images": int(np.isfinite(next(iter(normalised.values()))[0]).sum()),
      "classifier_accuracy": (float(np.mean(common["target"] == common["label"]))
                              if labels_match else None),
      "skewness_formula": SKEWNESS_FORMULA,
  }
  return summary, per_image
