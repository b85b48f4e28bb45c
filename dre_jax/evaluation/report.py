"""The evaluation's outputs, replaced all together.

    <workdir>/eval -> evaluation/reports/<id>/     a symlink, switched atomically
        results.json     per method: raw and normalised M_F, M_E, skewness,
                         seconds per image, images, settings; the sample, the
                         protocol, the config
        tables.md        Tables 2-5 (`tables.render`)
        per_image.npz    index, target, label and "<method>/<field>" arrays
                         (curve [N, m + 1], faithfulness, faithfulness_normalised,
                         explainability, skewness, ...)
        figure_data.npz  the figures' images (uint8), their split positions
                         ("index"), "misclassified" flags, box masks and
                         "maps/<method>" (float16)
        figures/         saliency.png (Figs. 7-9), misclassified.png (Fig. 11),
                         mean_curves.png, the controller's Figs. 5, 6, 13-15
    <workdir>/evaluation/cache/   the resumable per-(method, shard) results
    <workdir>/evaluation/controller_figures/   Figs. 5, 6, 13-15, drawn once
                                               and copied into each report

A report is written completely into a temporary directory, renamed into
`evaluation/reports/`, and only then does the `eval` symlink switch to it
(`os.replace` of a symlink is atomic): a reader, or a run killed at any
moment, never sees files of two different runs side by side. A partial run
(`max_shards`) publishes `eval_partial` instead and never touches `eval`. The
previous report is deleted when it had the same configuration (sample,
protocol, methods) and kept, with a message, when it differed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from typing import Any, Callable

import numpy as np

from dre_jax import atomic
from dre_jax.evaluation import figures
from dre_jax.evaluation import tables

STORE = "evaluation"
REPORTS = os.path.join(STORE, "reports")
CACHE = os.path.join(STORE, "cache")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _clean_stale(directory: str) -> None:
  """Removes temporaries left by killed runs (their process is gone)."""
  if not os.path.isdir(directory):
    return
  for name in os.listdir(directory):
    if name.startswith(".tmp-"):
      try:
        pid = int(name.rsplit("-", 1)[1])
      except ValueError:
        continue
      if not _pid_alive(pid):
        shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def configuration(results: dict[str, Any]) -> dict[str, Any]:
  """What makes two reports comparable: sample, protocol, methods."""
  return {"sample": results.get("sample"), "protocol": results.get("protocol"),
          "methods": sorted(results.get("methods", {})),
          "split": results.get("split"), "dataset": results.get("dataset")}


def publish(workdir: str, link_name: str, build: Callable[[str], None],
            results: dict[str, Any]) -> tuple[str, str | None]:
  """Builds a report with `build(directory)` and points `<workdir>/<link_name>` at it.

  Returns (the link's path, a message about the replaced report or None).
  """
  store = os.path.join(workdir, REPORTS)
  os.makedirs(store, exist_ok=True)
  _clean_stale(store)
  report_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
  tmp = os.path.join(store, f".tmp-{report_id}")
  build(tmp)
  final = os.path.join(store, report_id)
  os.rename(tmp, final)
  link = os.path.join(workdir, link_name)
  note, previous = None, None
  if os.path.islink(link):
    previous = os.path.realpath(link)
  elif os.path.isdir(link):  # an eval/ directory of the older layout
    legacy = os.path.join(store, f"legacy-{report_id}")
    os.rename(link, legacy)
    note = f"moved the older {link} to {legacy}"
  tmp_link = os.path.join(workdir, f".{link_name}.tmp-{report_id}")
  os.symlink(os.path.relpath(final, workdir), tmp_link)
  os.replace(tmp_link, link)
  if previous and os.path.isdir(previous) and previous != os.path.realpath(final):
    old = _read_results(previous)
    if old is not None and configuration(old) != configuration(results):
      note = (f"{link} held another configuration ({_describe(old)}); kept it "
              f"at {previous}")
    else:
      shutil.rmtree(previous, ignore_errors=True)
  return link, note


def _read_results(directory: str) -> dict[str, Any] | None:
  try:
    with open(os.path.join(directory, "results.json")) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _describe(results: dict[str, Any]) -> str:
  return (f"{results.get('num_images')} images of {results.get('dataset')}/"
          f"{results.get('split')}, methods "
          f"{','.join(sorted(results.get('methods', {})))}")


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  return buffer.getvalue()


def write_results(directory: str, results: dict[str, Any],
                  per_image: dict[str, np.ndarray]) -> None:
  """per_image.npz, tables.md and results.json (last) into `directory`, each
  written atomically."""
  atomic.write_atomic(os.path.join(directory, "per_image.npz"), _npz_bytes(per_image))
  atomic.write_atomic(os.path.join(directory, "tables.md"), tables.render([results]))
  atomic.write_atomic(os.path.join(directory, "results.json"),
                      json.dumps(results, indent=2, sort_keys=True, default=str))


def _row_titles(rows, common, class_name, label_name, labels_match) -> list[str]:
  titles = []
  for r in rows:
    t, l = int(common["target"][r]), int(common["label"][r])
    text = f"t: {class_name(t)}"
    if labels_match or label_name is not None:
      text += f"\nlabel: {label_name(l) if label_name else class_name(l)}"
    titles.append(text)
  return titles


def _controller_figures(store: str) -> list[str]:
  """The controller's figures (the same for every run), drawn once per store."""
  directory = os.path.join(store, "controller_figures")
  names = ["fig5_controller_pdfs.png", "fig6_other_distributions.png",
           "fig13_uniform.png", "fig14_skew_normal.png", "fig15_mixtures.png"]
  paths = [os.path.join(directory, n) for n in names]
  if not all(os.path.exists(p) for p in paths):
    paths = figures.controller_figures(directory)
  return paths


def build_report(directory: str, results: dict[str, Any],
                 per_image: dict[str, np.ndarray],
                 per_method: dict[str, dict[str, Any]], common: dict[str, Any], *,
                 class_name: Callable[[int], str] = str,
                 label_name: Callable[[int], str] | None = None,
                 labels_match: bool = True) -> None:
  """Writes results.json, tables.md, per_image.npz and figures/ into `directory`."""
  os.makedirs(os.path.join(directory, "figures"), exist_ok=True)
  fig_dir = os.path.join(directory, "figures")
  names = list(per_method)
  rows = common.get("rows", np.zeros(0, int))
  wrong = common.get("misclassified", np.zeros(0, bool))
  normalised = np.stack([per_image[f"{n}/faithfulness_normalised"] for n in names], 1)
  for title, pick, file in (("saliency", ~wrong, "saliency.png"),
                            ("misclassified", wrong, "misclassified.png")):
    if not pick.any():
      continue
    chosen = rows[pick]
    figures.saliency_grid(
        os.path.join(fig_dir, file), common["images"][pick],
        {n: per_method[n]["maps"][pick].astype(np.float32) for n in names},
        _row_titles(chosen, common, class_name, label_name, labels_match),
        scores=normalised[chosen] if len(names) > 1 else None,
        box_masks=common["box_mask"][pick] if "box_mask" in common else None)
  figures.mean_curves(
      os.path.join(fig_dir, "mean_curves.png"),
      {tables.display_name(n): results["methods"][n]["mean_curve"] for n in names
       if results["methods"][n]["mean_curve"] is not None},
      title=f"{results['arch']} on {results['dataset']}/{results['split']}, "
            f"{results['num_images']} images")
  for path in _controller_figures(os.path.dirname(os.path.dirname(
      os.path.abspath(directory)))):
    shutil.copy(path, fig_dir)
  figure_data = {"index": common["index"][rows], "images": common["images"],
                 "misclassified": wrong,
                 **{f"maps/{n}": per_method[n]["maps"] for n in names}}
  if "box_mask" in common:
    figure_data["box_mask"] = common["box_mask"]
  atomic.write_atomic(os.path.join(directory, "figure_data.npz"),
                      _npz_bytes(figure_data))
  write_results(directory, results, per_image)
