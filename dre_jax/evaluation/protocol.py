"""The comparison protocol (paper Sec. 4.1-4.2): every method on the same images.

    sample = make_sample(split_size, num_images=2000, seed=0)   # sorted positions
    dirs = run(classifier, methods, sample, source, cache_dir, Protocol(...))
    per_method, common = cache.collect(dirs, names, sample, protocol)

The sample is a seeded random subset of the split's positions (the paper's
10,000 ImageNet validation and 2,000 CUB test images), cut into shards of
`shard_size` images. For every shard the images are read once; the explained
class t is the classifier's prediction (argmax); then each method explains the
shard (timed, compiled ahead) and is scored with every metric of
`scoring.METRICS` (M_F of Eq. 10 with the tie-breaker, and on the first
`tie_break_effect_images` images also without it; M_E of Eq. 11 where the
batches carry box masks; the maps' skewness and tied fraction).

Each (method, shard) result is one file of the resumable cache (`cache`:
fingerprinted directories, one atomically written `.npz` per shard). A run
killed at any point restarts with the same command, skips the finished files
and ends with the same numbers: the random methods' keys depend only on (seed,
method, shard, batch).

Devices and hosts: the batch is split over one mesh of all devices
(`dre_jax.parallel`); every process reads the same shard and feeds its rows
of each global batch; per-image results are gathered to every process and
process 0 writes them.

Compilation: on the CPU backend the classifier's variables are compiled into
the explain and scoring programs as constants (`classifier.jit_for`): XLA:CPU
runs a ResNet50 forward + input gradient 1.3x faster that way than with the
variables as arguments, with the same numbers. On GPUs and TPUs they stay
arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import zlib
from typing import Any, Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax import metrics
from dre_jax import parallel
from dre_jax import classifier as classifier_lib
from dre_jax.classifier import Classifier
from dre_jax.evaluation import cache
from dre_jax.evaluation import scoring


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How the methods are run and scored (`config.eval`, see its docstring)."""

  num_steps: int = 32
  steps_per_call: int = 4
  tie_break: metrics.TieBreak = metrics.TieBreak()
  batch_size: int = 16
  shard_size: int = 256
  seed: int = 0
  tie_break_effect_images: int = 256
  figure_images: int = 6
  explainability: bool = True

  @classmethod
  def from_config(cls, c) -> "Protocol":
    """From `config.eval` (a ConfigDict or any object with those fields)."""
    return cls(num_steps=int(c.num_steps), steps_per_call=int(c.steps_per_call),
               tie_break=metrics.TieBreak(float(c.tie_break_sigma),
                                          float(c.tie_break_weight)),
               batch_size=int(c.batch_size), shard_size=int(c.shard_size),
               seed=int(c.seed),
               tie_break_effect_images=int(c.tie_break_effect_images),
               figure_images=int(c.figure_images),
               explainability=bool(c.explainability))

  def __post_init__(self):
    for name in ("num_steps", "steps_per_call", "batch_size", "shard_size"):
      if getattr(self, name) <= 0:
        raise ValueError(f"config.eval.{name} must be > 0, got "
                         f"{getattr(self, name)}")

  def fingerprint(self) -> dict[str, Any]:
    """The fields that change the numbers (not batch_size or steps_per_call)."""
    return {"num_steps": self.num_steps,
            "tie_break": dataclasses.asdict(self.tie_break),
            "shard_size": self.shard_size, "seed": self.seed,
            "tie_break_effect_images": self.tie_break_effect_images,
            "figure_images": self.figure_images,
            "explainability": self.explainability}


@dataclasses.dataclass(frozen=True)
class EvalMethod:
  """One explainer as the protocol runs it: bound to its trained arrays and
  settings (`dre_jax.explainers.Method` is the registered explainer).

  explain: (classifier, images [N, H, W, 3], target [N], key) -> [N, H, W],
    jittable, its settings bound; settings: recorded with the results;
    fingerprint: identifies its trained arrays (e.g. a generator), "" if none.
  """

  name: str
  explain: Callable[..., jnp.ndarray]
  settings: dict[str, Any] = dataclasses.field(default_factory=dict)
  fingerprint: str = ""
  revision: int = 1


@dataclasses.dataclass(frozen=True)
class Sample:
  """The evaluated images: sorted positions in the split and what they are."""

  positions: np.ndarray
  description: dict[str, Any]

  def __len__(self) -> int:
    return len(self.positions)

  def num_shards(self, shard_size: int) -> int:
    return math.ceil(len(self.positions) / shard_size)

  def shard_limit(self, shard_size: int, max_shards: int | None = None) -> int:
    """The shards a run covers: all of them, or the first `max_shards`."""
    total = self.num_shards(shard_size)
    return total if max_shards is None else min(total, max_shards)

  def shard(self, k: int, shard_size: int) -> np.ndarray:
    return self.positions[k * shard_size:(k + 1) * shard_size]


def make_sample(split_size: int, num_images: int = 0, seed: int = 0,
                **description) -> Sample:
  """A seeded random subset of range(split_size), sorted; all of it if num_images is 0.

  The same (split_size, num_images, seed) always gives the same positions.
  """
  if split_size <= 0:
    raise ValueError("the evaluation split is empty")
  if num_images < 0:
    raise ValueError(f"config.eval.num_images must be >= 0, got {num_images}")
  if num_images == 0 or num_images >= split_size:
    positions = np.arange(split_size)
  else:
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.permutation(split_size)[:num_images])
  return Sample(positions.astype(np.int64),
                {**description, "split_size": int(split_size),
                 "num_images": int(len(positions)), "seed": int(seed)})


def array_source(arrays: dict[str, np.ndarray]):
  """A source over in-memory arrays (tests): {"image": [N, H, W, 3], "label",
  optionally "box_mask"}, indexed by split position."""

  def source(sample: Sample, shard_size: int) -> Iterator[dict[str, np.ndarray]]:
    for k in range(sample.num_shards(shard_size)):
      positions = sample.shard(k, shard_size)
      yield {**{key: np.asarray(v)[positions] for key, v in arrays.items()},
             "index": positions}

  return source


def _key(seed: int, counter: jnp.ndarray) -> jax.Array:
  """The random key of (method, shard, batch): independent of devices and resumes."""
  key = jax.random.key(seed)
  for i in range(3):
    key = jax.random.fold_in(key, counter[i])
  return key


def _figure_rows(target: np.ndarray, label: np.ndarray, count: int,
                 labels_match: bool) -> tuple[np.ndarray, np.ndarray]:
  """Rows of shard 0 for the figures: the first `count` correctly classified
  (or simply the first, when labels are another label space) and the first
  `count` misclassified; returns (rows, misclassified flags)."""
  if not labels_match:
    rows = np.arange(min(count, len(target)))
    return rows, np.zeros(len(rows), bool)
  right = np.flatnonzero(target == label)[:count]
  wrong = np.flatnonzero(target != label)[:count]
  rows = np.concatenate([right, wrong])
  return rows, np.concatenate([np.zeros(len(right), bool), np.ones(len(wrong), bool)])


class _Batches:
  """One shard's rows as global batches over the mesh (padded by repeating the
  last row; `valid` marks the real rows)."""

  def __init__(self, mesh, data: dict[str, np.ndarray], batch_size: int,
               boxes: bool):
    self.size = len(data["image"])
    self.count = math.ceil(self.size / batch_size)
    pad = self.count * batch_size - self.size
    rows = np.concatenate([np.arange(self.size), np.full(pad, self.size - 1)])
    n, p = jax.process_count(), jax.process_index()
    local = batch_size // n
    self.batches = []
    for b in range(self.count):
      take = rows[b * batch_size + p * local:b * batch_size + (p + 1) * local]
      arrays = {"image": data["image"][take].astype(np.float32)}
      if boxes:
        arrays["box_mask"] = data["box_mask"][take].astype(np.float32)
      self.batches.append(parallel.global_batch(mesh, arrays))


def run(classifier: Classifier, methods: Sequence[EvalMethod], sample: Sample,
        source: Callable[[Sample, int], Iterable[dict[str, np.ndarray]]],
        cache_dir: str, protocol: Protocol, *, classifier_id: str | None = None,
        labels_match: bool = True, max_shards: int | None = None,
        shards: Sequence[int] | None = None, mesh=None, progress: bool = True,
        constants: bool | None = None) -> dict[str, str]:
  """Explains and scores every shard of `sample` with every method, resumably.

  Args:
    classifier: the frozen classifier; methods: the explainers (`EvalMethod`).
    sample: the images (`make_sample`); source(sample, shard_size) yields
      each shard's {"image" [S, H, W, 3] in [0, 1], "label" [S], "index" [S]
      (split positions), optionally "box_mask" [S, H, W]}, in order.
    cache_dir: where the per-(method, shard) files go (`cache`).
    classifier_id: identifies the classifier's weights (default: their hash).
    labels_match: the classifier's classes are the dataset's labels (else no
      image counts as misclassified).
    max_shards: stop after this many shards (a partial run).
    shards: compute only these shard indices (default: all); other processes
      may compute the others in the same `cache_dir` at the same time: a
      (method, shard) file another process wrote meanwhile is not recomputed.
    constants: compile the classifier's variables into the programs (default
      `classifier.weights_as_constants`: on CPUs, networks up to ResNet50's
      size); the same numbers either way.

  Returns:
    {method name or cache.COMMON: its shard directory} for `cache.collect`.
  """
  mesh = mesh or parallel.make_mesh()
  parallel.check_batch_size(protocol.batch_size, "config.eval.batch_size")
  classifier_id = classifier_id or cache.classifier_fingerprint(classifier)
  dirs = cache.cache_dirs(cache_dir, methods, classifier_id, sample, protocol)
  num_shards = sample.num_shards(protocol.shard_size)
  limit = sample.shard_limit(protocol.shard_size, max_shards)
  names = [m.name for m in methods]
  if shards is not None:
    bad = sorted(set(shards) - set(range(num_shards)))
    if bad:
      raise ValueError(f"shards {bad} are not in the sample's {num_shards} "
                       f"shards of {protocol.shard_size} images (0 to "
                       f"{num_shards - 1})")
  if jax.process_index() == 0:
    cache.write_specs(dirs, methods, classifier_id, sample, protocol)
  done = cache.done_matrix(dirs, names, limit)
  done = np.asarray(parallel.broadcast_from_process_0(done)).reshape(limit, -1)
  if shards is not None:  # the others count as done here
    done[[k for k in range(limit) if k not in set(shards)]] = True
  if done.all():
    return dirs

  sizes = [len(sample.shard(k, protocol.shard_size)) for k in range(limit)]
  total = sum(sizes[k] * int((~done[k, 1:]).sum()) for k in range(limit))
  bar = _progress_bar(total, progress)
  frozen = parallel.replicate(mesh, classifier)
  if constants is None:
    constants = classifier_lib.weights_as_constants(classifier)
  predict = jax.jit(lambda clf, x: jnp.argmax(clf.logits(x), axis=-1))
  score = classifier_lib.jit_for(scoring.compute, frozen, constants=constants,
                                 static_argnames=("protocol", "untied"))
  compiled: dict[str, Any] = {}
  method_ids = {m.name: zlib.crc32(m.name.encode()) & 0x7FFFFFFF for m in methods}

  for k, data in enumerate(source(sample, protocol.shard_size)):
    if k >= limit:
      break
    if done[k].all():
      continue
    if not np.array_equal(data["index"], sample.shard(k, protocol.shard_size)):
      raise ValueError(f"shard {k}: the data source returned other images than "
                       "the sample's (split positions differ)")
    batches = _Batches(mesh, data, protocol.batch_size,
                       boxes=protocol.explainability and "box_mask" in data)
    targets = [predict(frozen, b["image"]) for b in batches.batches]
    target_host = np.concatenate([parallel.to_host(t) for t in targets])[:batches.size]
    label = np.asarray(data["label"]).astype(np.int64)
    rows = misclassified = None
    if k == 0:
      rows, misclassified = _figure_rows(target_host, label,
                                         protocol.figure_images, labels_match)
    if not done[k, 0] and jax.process_index() == 0:
      common = {"index": data["index"], "target": target_host, "label": label}
      if k == 0:
        common.update(rows=rows, misclassified=misclassified,
                      images=np.round(data["image"][rows] * 255).astype(np.uint8))
        if "box_mask" in data:
          common["box_mask"] = data["box_mask"][rows].astype(np.uint8)
      cache.write_shard(dirs[cache.COMMON], k, common)
    for j, m in enumerate(methods):
      if done[k, j + 1]:
        continue
      if shards is not None and _written_meanwhile(dirs[m.name], m.name, k):
        if bar is not None:
          bar.update(batches.size)
        continue
      if bar is not None:
        bar.set_description(f"{m.name} shard {k + 1}/{limit}")
      result = _run_method(m, frozen, batches, targets, score, protocol,
                           method_ids[m.name], k, compiled, mesh,
                           keep_maps=rows, bar=bar, constants=constants)
      if jax.process_index() == 0:
        result.update(index=data["index"], target=target_host, label=label)
        cache.write_shard(dirs[m.name], k, result)
  if bar is not None:
    bar.close()
  parallel.barrier("evaluation shards written")  # before anyone reads them
  return dirs


def _written_meanwhile(directory: str, name: str, shard: int) -> bool:
  """Another process sharing the cache has written this (method, shard)
  since the run started (every process agrees: process 0 reads the file)."""
  found = cache.is_done(directory, name, shard)
  return bool(np.asarray(parallel.broadcast_from_process_0(np.array(found))))


def _run_method(m: EvalMethod, frozen, batches: _Batches, targets, score,
                protocol: Protocol, method_id: int, shard: int,
                compiled: dict, mesh, keep_maps, bar=None,
                constants: bool = False) -> dict[str, np.ndarray]:
  """One method on one shard: timed explanation, then the metrics (M_F also
  without the tie-breaker on batches that start before the sample's
  `tie_break_effect_images`-th image)."""
  seconds, outs, maps = 0.0, [], []
  for b, (batch, target) in enumerate(zip(batches.batches, targets)):
    counter = parallel.replicate(mesh, np.array([method_id, shard, b], np.uint32))
    args = (frozen, batch["image"], target, counter)
    if m.name not in compiled:
      shown = bar.desc if bar is not None else None
      if bar is not None:
        bar.set_description_str(f"compiling {m.name}", refresh=True)
      explain = lambda clf, x, t, c, _m=m: _m.explain(  # noqa: E731
          clf, x, t, _key(protocol.seed, c))
      if constants:  # the classifier compiled in; called with the same args
        program = jax.jit(functools.partial(explain, frozen)).lower(*args[1:]).compile()
        compiled[m.name] = lambda _clf, *a, _p=program: _p(*a)
      else:
        compiled[m.name] = jax.jit(explain).lower(*args).compile()
      if bar is not None:
        bar.set_description_str(shown)
    begin = time.perf_counter()
    saliency = jax.block_until_ready(compiled[m.name](*args))
    seconds += time.perf_counter() - begin
    if saliency.shape != batch["image"].shape[:3]:
      raise ValueError(f"explainer {m.name!r} returned maps of shape "
                       f"{tuple(saliency.shape)} for images "
                       f"{tuple(batch['image'].shape)}; expected [N, H, W]")
    untied = (protocol.tie_break.enabled and shard * protocol.shard_size
              + b * protocol.batch_size < protocol.tie_break_effect_images)
    outs.append(parallel.to_host(score(frozen, batch["image"], saliency, target,
                                       batch.get("box_mask"), protocol=protocol,
                                       untied=untied)))
    if keep_maps is not None:
      maps.append(np.asarray(parallel.to_host(saliency), np.float32))
    if bar is not None:  # the real rows of this batch
      bar.update(min(protocol.batch_size, batches.size - b * protocol.batch_size))
  size = batches.size
  result = scoring.mask_nonfinite({key: np.concatenate([o[key] for o in outs])[:size]
                                   for key in outs[0]})
  result["seconds"] = np.float64(seconds)
  result["rows_processed"] = np.int64(batches.count * protocol.batch_size)
  if keep_maps is not None:
    result["maps"] = np.concatenate(maps)[:size][keep_maps].astype(np.float16)
  return result


def _progress_bar(total: int, enabled: bool):
  if not enabled or jax.process_index() != 0 or total == 0:
    return None
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(total=total, unit="img", desc="evaluate", mininterval=1.0,
              dynamic_ncols=True, smoothing=0.05)
