"""How long an evaluation takes, estimated before it starts (what `dre-evaluate` prints).

The unit is a classifier pass, one forward + input gradient per image, as in
`dre_jax.explainers.Method.passes` (a forward alone counts `FORWARD` of it).
Per image, a method costs its own passes (`explainers.passes(name,
**settings)`) plus the scoring's: the insertion curve of Eq. 10 is
num_steps + 1 classifier forwards, computed a second time, without the
tie-breaker, on the first `tie_break_effect_images` images. The prediction of
the explained class is one forward per image for all methods together
(`count_passes`). The seconds per pass are measured on this backend: one
compiled forward + input gradient of the classifier on a small batch
(`seconds_per_pass`, a few seconds with its compilation). Compiling each
method and reading the data come on top; a resumed run does less.

    est = estimate.for_plan(runner.plan(workdir, config))
    print(est.line())
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax import explainers
from dre_jax import parallel

FORWARD = 0.5  # a forward's share of a pass (as `explainers.Method.passes`)
PREDICTIONS = "predictions"  # the key of the explained classes' forwards
TIMING_BATCH = 2  # images of the timed pass


def count_passes(methods: Mapping[str, Mapping[str, object]], num_images: int,
                 num_steps: int, untied_images: int = 0) -> dict[str, float]:
  """Classifier passes of an evaluation: {method: explaining + scoring its
  `num_images`, PREDICTIONS: the explained classes}.

  methods: {name: settings}; num_steps: m of Eq. 10 (config.eval.num_steps);
  untied_images: images scored a second time without the tie-breaker.
  """
  curve = (num_steps + 1) * FORWARD
  scoring = curve * (num_images + min(untied_images, num_images))
  out = {name: explainers.passes(name, **settings) * num_images + scoring
         for name, settings in methods.items()}
  out[PREDICTIONS] = FORWARD * num_images
  return out


def seconds_per_pass(classifier, image_size: int, batch: int = TIMING_BATCH) -> float:
  """Seconds of one pass (forward + input gradient) of `classifier` per image
  at `image_size` on the default device: the best of three compiled calls."""

  def one_pass(clf, images, target):
    return jax.grad(lambda x: clf.probability(x, target).sum())(images)

  images = jnp.full((batch, image_size, image_size, 3), 0.5, jnp.float32)
  target = jnp.zeros((batch,), jnp.int32)
  compiled = jax.jit(one_pass).lower(classifier, images, target).compile()
  jax.block_until_ready(compiled(classifier, images, target))
  best = math.inf
  for _ in range(3):
    begin = time.perf_counter()
    jax.block_until_ready(compiled(classifier, images, target))
    best = min(best, time.perf_counter() - begin)
  return best / batch


@dataclasses.dataclass(frozen=True)
class Estimate:
  """An evaluation's passes and how long they take.

  passes: `count_passes`; seconds_per_pass: per image on one device;
  workers: the devices that share the images (the processes on CPUs, whose
  devices share the cores); num_images; backend: jax's ("cpu", "gpu", "tpu").
  """

  passes: dict[str, float]
  seconds_per_pass: float
  workers: int
  num_images: int
  backend: str

  @property
  def total_passes(self) -> float:
    return float(sum(self.passes.values()))

  @property
  def seconds(self) -> float:
    return self.total_passes * self.seconds_per_pass / self.workers

  def images_within(self, seconds: float) -> int:
    """The largest sample (at least 1) that this estimate puts within `seconds`."""
    per_image = self.seconds / max(self.num_images, 1)
    return max(1, int(seconds // per_image)) if per_image > 0 else self.num_images

  def line(self) -> str:
    """One line: the passes, the seconds per pass and the time."""
    methods = len(self.passes) - 1
    return (f"{methods} method{'s' * (methods != 1)} x {self.num_images:,} images "
            f"= {self.total_passes:,.0f} classifier passes x "
            f"{_seconds(self.seconds_per_pass)} per pass ({self.backend}, "
            f"measured){'' if self.workers == 1 else f' / {self.workers} devices'}"
            f": about {duration(self.seconds)} (plus compilation)")


def images_to_run(sample, shard_size: int, untied_images: int,
                  shards=None, max_shards: int | None = None) -> tuple[int, int]:
  """(images, untied images) of the shards a run computes: all of them, the
  first `max_shards`, or those of `shards` (`--shards`) among these; untied
  images are those before position `untied_images` of the sample."""
  limit = sample.shard_limit(shard_size, max_shards)
  chosen = range(limit) if shards is None else [k for k in shards if k < limit]
  images = untied = 0
  for k in chosen:
    begin = k * shard_size
    end = begin + len(sample.shard(k, shard_size))
    images += end - begin
    untied += max(0, min(end, untied_images) - begin)
  return images, untied


def for_plan(plan, shards=None, max_shards: int | None = None) -> Estimate:
  """The estimate of a `dre_jax.evaluation.runner.Plan` (measured on its
  classifier; process 0's measurement on every process), for the shards this
  run computes (`images_to_run`)."""
  protocol = plan.protocol
  untied = protocol.tie_break_effect_images if protocol.tie_break.enabled else 0
  images, untied = images_to_run(plan.sample, protocol.shard_size, untied,
                                 shards, max_shards)
  passes = count_passes({m.name: m.settings for m in plan.methods},
                        images, protocol.num_steps, untied)
  measured = seconds_per_pass(plan.loaded.classifier, plan.image_size)
  measured = float(np.asarray(parallel.broadcast_from_process_0(
      np.float64(measured))))
  backend = jax.default_backend()
  workers = jax.process_count() if backend == "cpu" else jax.device_count()
  return Estimate(passes, measured, workers, images, backend)


def _seconds(seconds: float) -> str:
  return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def duration(seconds: float) -> str:
  """3725 -> "1 h 2 min"; 95 -> "2 min"; 20 -> "20 s"."""
  if seconds < 60:
    return f"{seconds:.0f} s"
  minutes = round(seconds / 60)
  if minutes < 60:
    return f"{minutes} min"
  hours, minutes = divmod(minutes, 60)
  if hours < 48:
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
  return f"{hours / 24:.1f} days"
