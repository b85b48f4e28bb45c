"""Evaluations of the same images merged into one table.

The optimisation baselines cost minutes per image on a CPU, so a table of all
ten methods can be run in pieces: `evaluate.py --methods=...` in different
sessions or on different machines, each writing `results.json` and
`per_image.npz` (`report`). Each method's per-image values depend only on the
classifier, the images, the protocol and the method's seeded key (of method,
shard and batch: `protocol.key`), not on the other methods, so the per-image
arrays of several runs over the same seeded sample can be put side by side and
summarised again: pools normalised per image over their members (Sec. 4.2.1),
ranks, and DRE minus each method with its paired bootstrap interval, exactly as
if one run had evaluated every method (`results.summarise`).

    merged, per_image = merge([load(a), load(b)])

Runs must agree on the dataset, split, image size, dtype, architecture, the
sample (seed, size and the images' indices, targets and labels) and the
protocol (`PROTOCOL_KEYS`); anything else is an error naming the difference. A
method evaluated by several runs is taken from the first, and `merge` reports
how far its per-image values in the others differ (`duplicates`).
"""

from __future__ import annotations

import json
import os
import types
from typing import Any, Sequence

import numpy as np

from dre_jax.evaluation import config as eval_config
from dre_jax.evaluation import results as results_lib
from dre_jax.evaluation import scoring

RESULTS_FILE = "results.json"
PER_IMAGE_FILE = "per_image.npz"
# What every run of a merge shares (results.json's top-level keys).
SHARED_KEYS = ("dataset", "split", "image_size", "dtype", "arch", "sample")
# The protocol fields that change a method's per-image values; batch size and
# device count do not (the keys are per method, shard and batch of the shard).
PROTOCOL_KEYS = ("explainability", "num_steps", "seed", "shard_size", "tie_break")
COMMON_ARRAYS = ("index", "target", "label")


def load(directory: str) -> dict[str, Any]:
  """{"results": results.json, "per_image": {key: array}, "path": directory}."""
  paths = [os.path.join(directory, f) for f in (RESULTS_FILE, PER_IMAGE_FILE)]
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise FileNotFoundError(
        f"{missing[0]} does not exist: pass a directory that evaluate.py wrote "
        f"(<workdir>/eval, holding {RESULTS_FILE} and {PER_IMAGE_FILE})")
  try:
    with open(paths[0]) as f:
      results = json.load(f)
    with np.load(paths[1]) as z:
      per_image = {k: z[k] for k in z.files}
  except (OSError, ValueError) as e:
    raise ValueError(f"cannot read the evaluation in {directory} ({e}); "
                     "evaluate.py rewrites it when run again") from None
  return {"results": results, "per_image": per_image, "path": directory}


def _methods(run: dict[str, Any]) -> list[str]:
  return list(run["results"]["methods"])


def _check_compatible(runs: Sequence[dict[str, Any]]) -> None:
  first = runs[0]
  for run in runs[1:]:
    a, b = first["results"], run["results"]
    for key in SHARED_KEYS:
      if a.get(key) != b.get(key):
        raise ValueError(f"{run['path']} evaluated {key} {b.get(key)!r}, {first['path']} "
                         f"{a.get(key)!r}: only evaluations of the same images merge")
    for key in PROTOCOL_KEYS:
      if a["protocol"].get(key) != b["protocol"].get(key):
        raise ValueError(
            f"{run['path']} ran protocol {key}={b['protocol'].get(key)!r}, "
            f"{first['path']} {a['protocol'].get(key)!r}: rerun one with the other's "
            "config.eval settings")
    for key in COMMON_ARRAYS:
      if not np.array_equal(first["per_image"][key], run["per_image"][key]):
        raise ValueError(f"{run['path']} and {first['path']} hold different images "
                         f"({key} differs): only evaluations of the same sample merge")


def _method_arrays(run: dict[str, Any], name: str) -> dict[str, Any]:
  """The per-method arrays `results.summarise` reads, back from per_image.npz."""
  entry = run["results"]["methods"][name]
  arrays = {key: run["per_image"][f"{name}/{key}"] for key in scoring.names()}
  images = int(entry.get("images") or len(run["per_image"]["index"]))
  arrays["rows_processed"] = images
  arrays["seconds"] = float(entry["seconds_per_image"]) * images
  return arrays


def duplicates(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
  """{method: {run path: max |difference| of its per-image M_F and M_E from the
  first run's}} for every method that several runs evaluated."""
  out: dict[str, dict[str, float]] = {}
  for name in _methods(runs[0]):
    for run in runs[1:]:
      if name in _methods(run):
        diff = max(float(np.nanmax(np.abs(
            runs[0]["per_image"][f"{name}/{key}"] - run["per_image"][f"{name}/{key}"]),
            initial=0.0)) for key in ("faithfulness", "explainability"))
        out.setdefault(name, {})[run["path"]] = diff
  return out


def merge(runs: Sequence[dict[str, Any]], *, pools: dict[str, list[str]] | None = None
          ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """(results.json's content, per_image.npz's arrays) of the runs' methods
  evaluated together. pools: {name: methods}; default: the first run's
  `config.eval.pools`. The bootstrap's resamples and seed are the first run's."""
  if not runs:
    raise ValueError("nothing to merge: pass at least one evaluation")
  _check_compatible(runs)
  first = runs[0]["results"]
  per_method: dict[str, dict[str, Any]] = {}
  settings: dict[str, Any] = {}
  sanity_methods: dict[str, Any] = {}
  sanity_images: dict[str, Any] = {}
  source: dict[str, str] = {}
  for run in runs:
    for name in _methods(run):
      if name in per_method:
        continue
      per_method[name] = _method_arrays(run, name)
      entry = run["results"]["methods"][name]
      settings[name] = entry.get("settings", {})
      if "sanity" in entry:
        sanity_methods[name] = entry["sanity"]
        sanity_images[name] = (run["results"].get("sanity") or {}).get("images")
      source[name] = run["path"]
  sanity_info = next((r["results"]["sanity"] for r in runs if r["results"].get("sanity")),
                     None)
  checks = {**sanity_info, "methods": sanity_methods} if sanity_info else None
  if pools is None:
    pools = eval_config.pools(types.SimpleNamespace(
        pools=first.get("config", {}).get("eval", {}).get("pools", [])))
  common = {k: runs[0]["per_image"][k] for k in COMMON_ARRAYS}
  bootstrap = first.get("bootstrap", {})
  labels_match = first.get("classifier_accuracy") is not None
  summary, per_image = results_lib.summarise(
      per_method, common, labels_match=labels_match, settings=settings, pools=pools,
      resamples=int(bootstrap.get("resamples", 10_000)), seed=int(bootstrap.get("seed", 0)),
      sanity_checks=checks)
  for name, path in source.items():
    summary["methods"][name]["evaluated_in"] = path
    if name in sanity_images:
      summary["methods"][name]["sanity_images"] = sanity_images[name]
  merged = {key: value for key, value in first.items()
            if key not in ("methods", "pools", "normalised_images", "bootstrap",
                           "sanity", "workdir", "report", "partial")}
  merged.update(summary)
  merged["merged_from"] = [
      {"path": run["path"], "workdir": run["results"].get("workdir"),
       "methods": _methods(run), "partial": bool(run["results"].get("partial"))}
      for run in runs]
  merged["partial"] = any(m["partial"] for m in merged["merged_from"])
  merged["duplicates"] = duplicates(runs)
  return merged, per_image
