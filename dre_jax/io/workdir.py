"""The trained-estimator workdir that `train.py` writes and everything else reads.

    workdir/
      config.json            the config of the first run in this workdir
      classifier/            the frozen classifier DRE explains
                             (`dre_jax.io.classifier_dir`)
      estimator/             the trained generator: variables/ (orbax) and
                             estimator.json, written last (the completion mark)
      checkpoints/<stage>/   training's resumable checkpoints (`dre_jax.training`)
      summary.json           final metrics of every stage
      events.out.tfevents.*  TensorBoard

`load_estimator(workdir)` returns `(dre, classifier, generator_variables,
meta)`; it imports nothing from training. estimator.json holds the generator's
model settings (upsample, widths, eta, h: `config.generator`) under
"generator", the
classifier's arch and class count and the image size the generator was
trained at; estimator.json files written before the generator settings had a
group of their own (flat upsample/widths/eta/h) load too.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp

from dre_jax import atomic
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.io import classifier_dir

CLASSIFIER_DIR = "classifier"
ESTIMATOR_DIR = "estimator"
ESTIMATOR_FILE = "estimator.json"
VARIABLES_DIR = "variables"
_GENERATOR_FIELDS = ("upsample", "widths", "eta", "h")


def resolve(workdir: str | os.PathLike) -> str:
  """The absolute workdir, `~` expanded."""
  return os.path.abspath(os.path.expanduser(os.fspath(workdir)))


def write_json(directory: str | os.PathLike, name: str, value: Any) -> str:
  """Atomically writes `directory/name` (process 0 only), creating `directory`.

  Returns the path. Every process may call it; only process 0 writes.
  """
  path = os.path.join(resolve(directory), name)
  if jax.process_index() == 0:
    atomic.write_atomic(path, json.dumps(value, indent=2, sort_keys=True))
  return path


def estimator_metadata(dre: DRE, num_classes: int, image_size: int
                       ) -> dict[str, Any]:
  """What estimator.json records: enough to rebuild `dre` for the classifier."""
  return {"arch": dre.spec.name, "num_classes": int(num_classes),
          "image_size": int(image_size),
          "generator": {"upsample": dre.generator.upsample,
                        "widths": list(dre.generator.widths),
                        "eta": float(dre.eta), "h": float(dre.h)}}


def save_estimator(workdir: str | os.PathLike, metadata: dict[str, Any],
                   generator_variables: Any) -> str:
  """Writes the trained generator next to the classifier in `workdir`.

  The variables first, then estimator.json (atomic rename): the JSON marks the
  estimator complete. Every process calls it (orbax's save is collective).
  """
  directory = os.path.join(resolve(workdir), ESTIMATOR_DIR)
  classifier_dir.save_variables(os.path.join(directory, VARIABLES_DIR),
                                generator_variables)
  write_json(directory, ESTIMATOR_FILE, metadata)
  return directory


def has_estimator(workdir: str | os.PathLike) -> bool:
  """True when the estimator's completion mark (estimator.json) exists."""
  return os.path.isfile(os.path.join(resolve(workdir), ESTIMATOR_DIR,
                                     ESTIMATOR_FILE))


def trained_objective(workdir: str | os.PathLike) -> str | None:
  """The stage-2 objective recorded in config.json (`config.dre.objective`):
  "dre" or "mgnet"; None when config.json or the field is absent."""
  try:
    with open(os.path.join(resolve(workdir), "config.json")) as f:
      return json.load(f).get("dre", {}).get("objective")
  except (OSError, ValueError):
    return None


def _repair(workdir: str) -> str:
  return (f"delete {os.path.join(workdir, ESTIMATOR_DIR)} and rerun train.py "
          f"with --workdir={workdir} (the finished stages are kept)")


def read_metadata(workdir: str | os.PathLike) -> dict[str, Any]:
  """estimator.json, checked and in today's layout (old flat layout converted)."""
  workdir = resolve(workdir)
  path = os.path.join(workdir, ESTIMATOR_DIR, ESTIMATOR_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"no trained estimator in {workdir} (no {path}); train one with "
        f"`python train.py --config=... --workdir={workdir}`")
  try:
    with open(path) as f:
      meta = json.load(f)
    if "generator" not in meta:  # written before the generator had its group
      meta["generator"] = {k: meta.pop(k) for k in _GENERATOR_FIELDS}
    g = meta["generator"]
    meta = {"arch": str(meta["arch"]), "num_classes": int(meta["num_classes"]),
            "image_size": int(meta["image_size"]),
            "generator": {"upsample": str(g["upsample"]),
                          "widths": [int(w) for w in g["widths"]],
                          "eta": float(g["eta"]), "h": float(g["h"])}}
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ValueError(f"{path} is damaged ({type(e).__name__}: {e}); "
                     f"{_repair(workdir)}") from None
  return meta


def load_estimator(workdir: str | os.PathLike, dtype=jnp.float32
                   ) -> tuple[DRE, Classifier, Any, dict[str, Any]]:
  """What `train.py` trained: `(dre, classifier, generator_variables, meta)`.

  Use as `masks, target = jax.jit(dre.explain)(classifier, generator_variables,
  images)` with images [N, H, W, 3] float32 in [0, 1]. meta: estimator.json
  (arch, num_classes, image_size, generator settings).

  Raises FileNotFoundError (nothing trained there) or ValueError (a damaged
  file), each naming the file and the repair.
  """
  workdir = resolve(workdir)
  meta = read_metadata(workdir)
  classifier = classifier_dir.load_classifier(
      os.path.join(workdir, CLASSIFIER_DIR), dtype=dtype)
  if (classifier.spec.name, classifier.num_classes) != (meta["arch"],
                                                        meta["num_classes"]):
    raise ValueError(
        f"{workdir}: the estimator was trained for {meta['arch']} with "
        f"{meta['num_classes']} classes, the classifier directory holds "
        f"{classifier.spec.name} with {classifier.num_classes}; "
        f"{_repair(workdir)}")
  g = meta["generator"]
  try:
    dre = DRE.create(classifier.spec, meta["num_classes"],
                     upsample=g["upsample"], widths=tuple(g["widths"]),
                     eta=g["eta"], h=g["h"], dtype=dtype)
    target = jax.eval_shape(
        functools.partial(dre.init_generator, image_size=meta["image_size"]),
        jax.random.key(0), classifier)
  except ValueError as e:
    raise ValueError(f"{os.path.join(workdir, ESTIMATOR_DIR, ESTIMATOR_FILE)} "
                     f"does not describe a generator ({e}); "
                     f"{_repair(workdir)}") from None
  generator_variables = classifier_dir.restore_variables(
      os.path.join(workdir, ESTIMATOR_DIR, VARIABLES_DIR), target,
      _repair(workdir))
  return dre, classifier, generator_variables, meta
