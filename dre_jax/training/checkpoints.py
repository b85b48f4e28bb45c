"""What training writes to its workdir, and how it is read back.

    workdir/
      config.json                the config of the first run in this workdir
      checkpoints/<stage>/<step>/  orbax CheckpointManager, one per stage:
                                 {"state": params, batch_stats, opt_state,
                                  step; "data": the data position}
      classifier/                the frozen classifier DRE explains
                                 (`dre_jax.models.convert.save_classifier`)
      estimator/                 the trained generator: estimator.json and
                                 variables/ (orbax), read by `load_estimator`
      summary.json               final metrics of every stage
      events.out.tfevents.*      TensorBoard

orbax writes each checkpoint into a temporary directory and renames it when
complete, so a run killed at any moment leaves the earlier checkpoints intact
and the next run resumes from the newest complete one. In a multi-process run
every process calls the savers and orbax writes each array once.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from dre_jax import atomic
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.models import convert

CLASSIFIER_DIR = "classifier"
ESTIMATOR_DIR = "estimator"
_ESTIMATOR_FILE = "estimator.json"
_VARIABLES_DIR = "variables"


class StageCheckpoints:
  """Checkpoints of one stage: save every N steps and at the end, keep the last few."""

  def __init__(self, workdir: str, stage: str, keep: int):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints",
                                  stage)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, cleanup_tmp_directories=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_position: dict[str, int]) -> None:
    """Starts writing `state` (async); a finished write is renamed into place."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_position)), force=True)

  def restore(self, step: int, target: Any) -> tuple[Any, dict[str, int]]:
    """(state like `target`, with its shardings; the data position) at `step`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract),
          data=ocp.args.JsonRestore()))
    except (ValueError, KeyError) as e:
      raise ValueError(
          f"the checkpoint {self.directory}/{step} does not fit this config "
          f"({e}); it was written by another config: use another --workdir "
          "or the config that wrote it") from e
    return restored["state"], restored["data"]

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _write_json(path: str, value: Any) -> None:
  """Atomic JSON write, by process 0 only."""
  if jax.process_index() != 0:
    return
  atomic.write_atomic(path, json.dumps(value, indent=2, sort_keys=True))


def estimator_metadata(dre: DRE, num_classes: int, image_size: int
                       ) -> dict[str, Any]:
  g = dre.generator
  return {"arch": dre.spec.name, "num_classes": num_classes,
          "widths": list(g.widths), "upsample": g.upsample, "eta": dre.eta,
          "h": dre.h, "image_size": image_size}


def save_estimator(workdir: str, metadata: dict[str, Any],
                   generator_variables: Any) -> str:
  """Writes the trained generator next to the classifier in `workdir`."""
  directory = os.path.join(os.path.abspath(workdir), ESTIMATOR_DIR)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(directory, _VARIABLES_DIR),
                      generator_variables, force=True)
  _write_json(os.path.join(directory, _ESTIMATOR_FILE), metadata)
  return directory


def has_estimator(workdir: str) -> bool:
  return os.path.isfile(os.path.join(workdir, ESTIMATOR_DIR, _ESTIMATOR_FILE))


def load_estimator(workdir: str, dtype=jnp.float32
                   ) -> tuple[DRE, Classifier, Any, dict[str, Any]]:
  """What `train.py` trained: `(dre, classifier, generator_variables, meta)`.

  Use as `masks, target = jax.jit(dre.explain)(classifier, generator_variables,
  images)`.
  """
  workdir = os.path.abspath(workdir)
  meta_path = os.path.join(workdir, ESTIMATOR_DIR, _ESTIMATOR_FILE)
  if not os.path.isfile(meta_path):
    raise FileNotFoundError(
        f"no trained estimator in {workdir} (no {meta_path}); train one with "
        f"`python train.py --config=... --workdir={workdir}`")
  with open(meta_path) as f:
    meta = json.load(f)
  spec, _, classifier_variables = convert.load_classifier(
      os.path.join(workdir, CLASSIFIER_DIR), dtype=dtype)
  dre = DRE.create(spec, meta["num_classes"], upsample=meta["upsample"],
                   widths=tuple(meta["widths"]), eta=meta["eta"], h=meta["h"],
                   dtype=dtype)
  classifier = Classifier.create(spec, classifier_variables,
                                 num_classes=meta["num_classes"], dtype=dtype)
  target = jax.eval_shape(
      functools.partial(dre.init_generator, image_size=meta["image_size"]),
      jax.random.key(0), classifier)
  with ocp.StandardCheckpointer() as checkpointer:
    generator_variables = checkpointer.restore(
        os.path.join(workdir, ESTIMATOR_DIR, _VARIABLES_DIR),
        jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), target))
  return dre, classifier, generator_variables, meta


def write_json(directory: str, name: str, value: Any) -> None:
  """Atomically writes `directory/name` (process 0 only), creating `directory`."""
  if jax.process_index() == 0:
    os.makedirs(directory, exist_ok=True)
  _write_json(os.path.join(directory, name), value)
