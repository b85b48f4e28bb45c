"""Several evaluated workdirs side by side: one column (or row) per workdir.

`write(workdirs, results, out)` writes `out/tables.md` (Tables 2-5 with one
column per workdir, grouped by dataset, e.g. ResNet50 / VGG19 / GoogLeNet on
ImageNet and CUB as in Tables 3 and 4) and `out/workdirs.png`: for ablation
workdirs (the controller's (eta, h) settings, the ad hoc constraints), one
row per workdir with its controller's Eq. 8 density and its masks of the same
images, like Fig. 10 (b) and (c). Rows and columns are labelled by what
differs between the workdirs' config.json.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from dre_jax import atomic
from dre_jax import explainers
from dre_jax.evaluation import figures
from dre_jax.evaluation import tables

# Fields that never tell two settings apart.
_IGNORED = ("dataset.data_dir", "dataset.manual_dir", "dataset.boxes_dir",
            "model.torch_weights", "model.checkpoint", "eval.", "seed")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = json.dumps(value)
  return out


def labels(workdirs: Sequence[str]) -> list[str]:
  """Each workdir's label: the config.json fields that differ between them."""
  configs = []
  for w in workdirs:
    try:
      with open(os.path.join(w, "config.json")) as f:
        configs.append(_flat(json.load(f)))
    except (OSError, ValueError):
      configs.append({})
  keys = sorted({k for c in configs for k in c
                 if not k.startswith(_IGNORED)
                 and len({c.get(k) for c in configs}) > 1})
  out = []
  for w, c in zip(workdirs, configs):
    parts = [f"{k.split('.')[-1]}={c.get(k, '-')}" for k in keys
             if k != "model.name"][:4]
    label = ", ".join(parts) if parts else os.path.basename(w.rstrip("/"))
    out.append(label.replace('"', ""))
  return out


def write(workdirs: Sequence[str], results: Sequence[dict[str, Any]],
          out: str) -> list[str]:
  """Writes out/tables.md and out/workdirs.png; returns the paths written."""
  names = labels(workdirs)
  archs = [r["arch"] for r in results]
  labelled = []
  for r, label in zip(results, names):
    same_arch = archs.count(r["arch"]) > 1
    labelled.append({**r, "label": f"{r['arch']} ({label})" if same_arch else r["arch"]})
  paths = [os.path.join(out, "tables.md")]
  atomic.write_atomic(paths[0], tables.render(labelled))
  grid = _grid(workdirs, results, names)
  if grid is not None:
    paths.append(figures.workdir_grid(os.path.join(out, "workdirs.png"), *grid))
  return paths


def _grid(workdirs, results, names):
  """(labels, controllers, images, maps) when the workdirs share the sample."""
  data = []
  for w in workdirs:
    with np.load(os.path.join(w, "eval", "figure_data.npz")) as f:
      data.append({k: f[k] for k in f.files})
  if any(not np.array_equal(d["index"], data[0]["index"]) for d in data):
    return None  # other images: no common grid
  keep = ~data[0]["misclassified"]
  maps, controllers = [], []
  for d, r in zip(data, results):
    method = (explainers.PROPOSED if explainers.PROPOSED in r["methods"]
              else next(iter(r["methods"])))
    maps.append(d[f"maps/{method}"][keep].astype(np.float32))
    c = r.get("controller")
    # The controller shapes the maps of methods built on the DRE generator.
    controlled = (method in explainers.names()
                  and explainers.PROPOSED in explainers.method(method).needs)
    controllers.append((c["eta"], c["h"]) if c and controlled else None)
  return names, controllers, data[0]["images"][keep], maps
