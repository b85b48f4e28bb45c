"""The loop every stage runs: resume, steps, averaged metrics, progress, checkpoints.

`run_stage(stage, state, ...)` restores the stage's newest checkpoint (or
returns at once when its last step is saved), then runs the jitted step over
the global batches from that step on. Every `config.log_every_steps` steps the
step metrics, averaged with `clu.metrics`, plus images/s go once to the metric
writer (one log line, and TensorBoard on process 0), and
`clu.periodic_actions.ReportProgress` logs steps/s, the fraction done and the
ETA. Checkpoints are written every `config.checkpoint_every_steps` steps and
at the end, with the data position (epoch, batch) and the last metrics.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterator

from absl import logging
from clu import metric_writers
from clu import metrics as clu_metrics
from clu import periodic_actions
import jax
import ml_collections

from dre_jax import parallel
from dre_jax.training import checkpoints
from dre_jax.training import input as input_lib

StepFn = Callable[[Any, dict[str, jax.Array], Any], tuple[Any, dict]]


@dataclasses.dataclass
class Stage:
  """One training stage: its data, epochs and step function."""

  name: str
  input: input_lib.TrainInput
  epochs: int
  step_fn: StepFn
  frozen: Any            # passed to every step unchanged (the classifier)


def _averages(names) -> type[clu_metrics.Collection]:
  """A clu Collection averaging each named scalar metric over steps."""
  return clu_metrics.Collection.create(
      **{name: clu_metrics.Average.from_output(name) for name in names})


def _batches(stage: Stage, mesh, start_step: int, steps_per_epoch: int
             ) -> Iterator[dict[str, jax.Array]]:
  """Global batches from step `start_step` on, epoch after epoch."""
  epoch, skip = divmod(start_step, steps_per_epoch)
  for e in range(epoch, stage.epochs):
    for local in stage.input.epoch(e, skip if e == epoch else 0):
      yield parallel.global_batch(mesh, local)


def run_stage(stage: Stage, state: Any, mesh, workdir: str,
              config: ml_collections.ConfigDict,
              writer: metric_writers.MetricWriter) -> tuple[Any, dict]:
  """Trains `state` through the stage, resuming from and writing checkpoints.

  Returns (final state, last logged metrics). A stage whose final checkpoint
  exists is restored without training.
  """
  steps_per_epoch = stage.input.steps_per_epoch()
  total = stage.epochs * steps_per_epoch
  ckpt = checkpoints.StageCheckpoints(workdir, stage.name,
                                      config.keep_checkpoints)
  start = ckpt.latest_step() or 0
  summary = {}
  if start:
    state, data = ckpt.restore(start, state)
    summary = data.get("metrics", {})
    if data["epoch"] * steps_per_epoch + data["batch"] != start:
      raise ValueError(
          f"{ckpt.directory}/{start} was written with {data['batch_size']} "
          f"images per batch, the config now says {stage.input.batch_size}; "
          "use the config that wrote it or another --workdir")
    logging.info("%s: resuming at step %d of %d (epoch %d, batch %d)",
                 stage.name, start, total, data["epoch"], data["batch"])
  if start >= total:
    ckpt.close()
    logging.info("%s: done earlier (checkpoint at step %d), skipped",
                 stage.name, start)
    return state, summary

  logging.info("%s: steps %d to %d (%d epochs of %d); compiling the step ...",
               stage.name, start + 1, total, stage.epochs, steps_per_epoch)
  step_fn = jax.jit(stage.step_fn, donate_argnums=0)
  progress = periodic_actions.ReportProgress(
      num_train_steps=total, every_steps=config.log_every_steps,
      every_secs=None)
  averages, timer = None, None
  batch_size = stage.input.batch_size
  try:
    for step, batch in enumerate(_batches(stage, mesh, start, steps_per_epoch),
                                 start=start + 1):
      state, metrics = step_fn(state, batch, stage.frozen)
      if averages is None:
        averages = _averages(metrics).empty()
      averages = averages.merge(
          type(averages).single_from_model_output(**metrics))
      if step % config.log_every_steps == 0 or step == total:
        summary = {k: float(v) for k, v in averages.compute().items()}
        now = time.perf_counter()
        if timer is not None:  # the first interval includes compilation
          summary["images_per_second"] = (
              (step - timer[1]) * batch_size / (now - timer[0]))
        timer, averages = (now, step), None
        writer.write_scalars(step, {f"{stage.name}/{k}": v
                                    for k, v in summary.items()})
      progress(step)
      if step % config.checkpoint_every_steps == 0 or step == total:
        epoch, batch_index = divmod(step, steps_per_epoch)
        ckpt.save(step, state, {"epoch": epoch, "batch": batch_index,
                                "batch_size": batch_size,
                                "metrics": summary})
  finally:
    ckpt.close()
    writer.flush()
  if int(state.step) != total:
    raise RuntimeError(f"{stage.name}: the data ended at step "
                       f"{int(state.step)} of {total}")
  return state, summary
