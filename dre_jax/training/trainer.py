"""Training DRE into a workdir, run by `train.py`: `train_and_evaluate(config, workdir)`.

    0. classifier   fine-tune or take the classifier; frozen afterwards
    1. embeddings   stage 1: the spatial filter's class embeddings, Eq. 4
    2. dre          stage 2: the rest of the generator under Eq. 9 (or the
                    objective `config.dre.objective`), Adam, learning rate
                    halved every 3 epochs (Sec. 4.1)

(`stages`: their setup; `loop`: the loop they share; `steps`: the jitted
steps; `optimizers`; `objectives`: the stage-2 losses by name.)

A stage's output is complete only once its completion mark is written last
(classifier/classifier.json, estimator/estimator.json; the per-stage orbax
checkpoints rename a finished write into place), so a run killed at any moment
continues with the same command: each finished stage is checked and skipped,
an unfinished one resumes from its newest checkpoint. The same config and
seed give the same result: the key of step s of stage k is
fold_in(fold_in(key(seed), k), s) and the data order depends only on (seed,
epoch) (`dre_jax.data.pipelines`). One process (job) at a time trains in a
workdir (`WorkdirLock`); summary.json keeps the metrics of every stage that
ever ran there.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any

from absl import logging
from clu import metric_writers
import jax
import jax.numpy as jnp
import ml_collections

from dre_jax import config as config_lib
from dre_jax import parallel
from dre_jax.io import classifier_dir
from dre_jax.io import workdir as workdir_lib
from dre_jax.training import input as input_lib
from dre_jax.training import stages

SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
# Config groups that do not change what training produces (evaluate.py's).
_NOT_TRAINING = ("eval.",)


class WorkdirInUseError(OSError):
  """Another process is training in the workdir."""


class WorkdirLock:
  """An exclusive lock on workdir/.lock.<process>, held while training.

  A second training started on the same workdir (by mistake, or a job that
  was started twice) stops at once with a message instead of writing into the
  same checkpoints. The lock is an OS file lock (flock): it is released when
  the process ends, also when it is killed, so a stale lock never blocks.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, f".lock.{jax.process_index()}")
    self._file = None

  def __enter__(self) -> "WorkdirLock":
    self._file = open(self.path, "a+")  # pylint: disable=consider-using-with
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      self._file.seek(0)
      holder = self._file.read().strip() or "another process"
      self._file.close()
      raise WorkdirInUseError(
          f"{os.path.dirname(self.path)} is in use by {holder}, which is "
          "training there now; wait for it to finish (or stop it) and run "
          "again, or use another --workdir") from None
    self._file.seek(0)
    self._file.truncate()
    self._file.write(f"train.py (pid {os.getpid()})")
    self._file.flush()
    return self

  def __exit__(self, *exc) -> None:
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()


def check_config(config: ml_collections.ConfigDict) -> None:
  """Everything that can be checked before any work: values and devices."""
  config_lib.validate(config)
  for stage in config_lib.STAGES:
    if config[stage].epochs:
      parallel.check_batch_size(config[stage].batch_size,
                                f"config.{stage}.batch_size")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the stages that are not done yet; returns the summary of every stage."""
  check_config(config)
  workdir = workdir_lib.resolve(workdir)
  os.makedirs(workdir, exist_ok=True)
  with WorkdirLock(workdir):
    return _train(config, workdir)


def _train(config: ml_collections.ConfigDict, workdir: str) -> dict:
  _check_workdir_config(config, workdir)
  dtype = jnp.dtype(config.model.dtype)
  mesh = parallel.make_mesh()
  logging.info("data parallel over %d devices (%s) in %d processes",
               jax.device_count(), jax.devices()[0].platform,
               jax.process_count())
  d = config.dataset
  input_lib.prepare(d.name, d.train_split, data_dir=d.data_dir or None,
                    manual_dir=d.manual_dir or None, download=d.download)
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  summary = _read_summary(workdir)
  try:
    directory = os.path.join(workdir, workdir_lib.CLASSIFIER_DIR)
    if classifier_dir.is_complete(directory):
      classifier_dir.load_classifier(directory, dtype)  # verify what is kept
      logging.info("classifier: %s exists, skipped", directory)
    else:
      summary["classifier"] = stages.classifier_stage(config, workdir, mesh,
                                                      writer, dtype)
      _write_summary(workdir, summary)
    if workdir_lib.has_estimator(workdir):
      workdir_lib.load_estimator(workdir, dtype)  # verify what is kept
      logging.info("estimator: %s exists, skipped",
                   os.path.join(workdir, workdir_lib.ESTIMATOR_DIR))
    else:
      summary.update(stages.estimator_stages(config, workdir, mesh, writer,
                                             dtype))
      _write_summary(workdir, summary)
  finally:
    writer.close()
  return summary


def _read_summary(workdir: str) -> dict[str, Any]:
  """summary.json of earlier runs ({} when there is none or it is unreadable)."""
  path = os.path.join(workdir, SUMMARY_FILE)
  try:
    with open(path) as f:
      summary = json.load(f)
    return summary if isinstance(summary, dict) else {}
  except (OSError, ValueError):
    return {}


def _write_summary(workdir: str, summary: dict[str, Any]) -> None:
  workdir_lib.write_json(workdir, SUMMARY_FILE, summary)


def _check_workdir_config(config: ml_collections.ConfigDict,
                          workdir: str) -> None:
  """Writes config.json on the first run; later runs warn about what changed."""
  path = os.path.join(workdir, CONFIG_FILE)
  current = json.loads(config.to_json())
  if not os.path.isfile(path):
    workdir_lib.write_json(workdir, CONFIG_FILE, current)
    return
  try:
    with open(path) as f:
      first = config_lib.migrate(json.load(f))
  except (OSError, ValueError) as e:
    logging.warning("cannot read %s (%s); the config is not compared", path, e)
    return
  changed = [k for k in changed_fields(first, current)
             if not k.startswith(_NOT_TRAINING)]
  if changed:
    logging.warning("the config differs from the one that started %s in: "
                    "%s; finished stages are kept", workdir, ", ".join(changed))


def changed_fields(first: dict, current: dict) -> list[str]:
  """Dotted names of the fields whose values differ between two config dicts."""
  a, b = _flat(first), _flat(current)
  return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out
