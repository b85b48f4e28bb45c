"""Explaining batches of inputs: the methods bound and compiled, the batches run, the results.

`explain_images` returns everything as arrays (`Explanations`);
`explain_batches` yields them one batch at a time (constant memory for long
lists). Each method is `dre_jax.explainers.bind` with the model's generator as
the kind it was trained as (`Model.objective`), jitted once per model, method
and settings (`compiled_method`), and run on batches padded to one size (one
compilation per method).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax import classifier as classifier_lib
from dre_jax import explainers
from dre_jax import images as images_lib
from dre_jax.app import inputs as inputs_lib
from dre_jax.app.loading import Model, load_model, missing_generator
from dre_jax.classifier import Classifier

DEFAULT_BATCH_SIZE = 8


def runnable_methods(model: Model) -> tuple[str, ...]:
  """The methods `model` can run, in the order of the paper's Table 2:
  those that need no trained generator, and those whose generator it has."""
  have = set() if model.dre is None else {model.objective}
  names = [n for n in explainers.names()
           if set(explainers.method(n).needs) <= have]
  return tuple(sorted(names, key=_table2_order))


def default_methods(model: Model) -> tuple[str, ...]:
  """What runs when no methods are named: the generator's own method (DRE,
  or MGnet for a generator trained with its objective); without a generator,
  every method that needs none."""
  if model.dre is not None:
    return (model.objective,)
  return runnable_methods(model)


def _table2_order(name: str) -> tuple[float, str]:
  row = explainers.method(name).table2
  return (row.row if row is not None else float("inf"), name)


@jax.jit
def predict(classifier: Classifier, images: jnp.ndarray) -> jnp.ndarray:
  """[N, K] softmax probabilities of the classifier."""
  return jax.nn.softmax(classifier.logits(images), axis=-1)


def compiled_method(name: str, model: Model, settings: dict[str, Any]
                    ) -> Callable[[Classifier, jnp.ndarray, jnp.ndarray, jax.Array],
                                  jnp.ndarray]:
  """Jitted fn(classifier, images, target, key) -> [N, H, W] for method `name`.

  `explainers.bind` with the model's generator as the kind it was trained as
  (`Model.objective`); made once per model, method and settings, with the
  model's classifier compiled in on CPUs (`classifier.jit_for`). A method
  that needs a generator the model lacks is a ValueError saying how to get
  one (`loading.missing_generator`).
  """
  key = (name, repr(sorted(settings.items())))
  if key not in model.compiled:
    names = explainers.names()
    if name not in names:
      close = difflib.get_close_matches(name, names, n=1)
      hint = f" (did you mean {close[0]!r}?)" if close else ""
      raise ValueError(f"unknown method {name!r}{hint}; methods: "
                       f"{', '.join(names)}")
    generator = (None if model.dre is None else
                 explainers.Generator(model.dre, model.generator_variables))
    given = {} if generator is None else {model.objective: generator}
    try:
      fn = explainers.bind(name, settings=settings, **given)
    except explainers.MissingGenerator as err:
      raise ValueError(missing_generator(name, model, err.missing)) from None
    # The model's classifier compiled in on CPUs (classifier.jit_for).
    model.compiled[key] = classifier_lib.jit_for(fn, model.classifier)
  return model.compiled[key]


# ------------------------------------------------------------------ results


@dataclasses.dataclass
class Explanations:
  """The explanations of a list of images.

  sources: one per explained image, its path or "image <i>" for an array.
  images: [N, S, S, 3] float32 in [0, 1]; maps: {method: [N, S, S] float32};
  targets: [N] int32; probabilities: [N, K] float32; failures: the inputs that
  could not be read (`dre_jax.images.ImageError`, with `.path` and `.reason`).
  """

  model: Model
  methods: tuple[str, ...]
  sources: list[str]
  images: np.ndarray
  maps: dict[str, np.ndarray]
  targets: np.ndarray
  probabilities: np.ndarray
  failures: list[images_lib.ImageError]

  def __len__(self) -> int:
    return len(self.sources)

  def top(self, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """([N, k] classes, [N, k] probabilities), most probable first."""
    k = min(k, self.probabilities.shape[-1])
    order = np.argsort(-self.probabilities, axis=-1, kind="stable")[:, :k]
    return order, np.take_along_axis(self.probabilities, order, axis=-1)

  @classmethod
  def concatenate(cls, parts: Sequence["Explanations"], model: Model,
                  methods: tuple[str, ...],
                  failures: list[images_lib.ImageError]) -> "Explanations":
    s = model.image_size
    k = model.classifier.num_classes

    def cat(arrays, shape, dtype):
      return (np.concatenate(arrays) if arrays else np.zeros(shape, dtype))

    return cls(
        model=model, methods=methods,
        sources=[src for p in parts for src in p.sources],
        images=cat([p.images for p in parts], (0, s, s, 3), np.float32),
        maps={m: cat([p.maps[m] for p in parts], (0, s, s), np.float32)
              for m in methods},
        targets=cat([p.targets for p in parts], (0,), np.int32),
        probabilities=cat([p.probabilities for p in parts], (0, k), np.float32),
        failures=list(failures))


# ------------------------------------------------------------------ explaining


def explain_batches(images_or_paths, workdir: str | os.PathLike | None = None, *,
                    methods: Sequence[str] | None = None,
                    target: int | str | Sequence[int | str] | None = None,
                    model: Model | None = None,
                    released_dre: str | os.PathLike | None = None,
                    torch_weights: str | os.PathLike | None = None,
                    arch: str | None = None,
                    classifier_dir: str | os.PathLike | None = None,
                    image_size: int | None = None,
                    dtype: str = "float32",
                    crop_fraction: float = images_lib.EVAL_CROP_FRACTION,
                    background: Sequence[float] = images_lib.WHITE,
                    batch_size: int = DEFAULT_BATCH_SIZE,
                    key: jax.Array | None = None,
                    settings: dict[str, dict[str, Any]] | None = None,
                    on_failure: Callable[[images_lib.ImageError], None] | None = None,
                    on_method: Callable[[str, float], None] | None = None,
                    progress: bool = False) -> Iterator[Explanations]:
  """`explain_images` one batch at a time (for long lists: constant memory).

  Yields an `Explanations` per batch of up to `batch_size` readable images;
  the failures of each batch's files are in its `failures` and are passed to
  `on_failure` as they happen; `on_method(name, seconds)` is called as each
  method finishes a batch (its compilation included on the first). Other
  arguments as `explain_images`.
  """
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  if model is None:
    model = load_model(workdir, released_dre=released_dre,
                       torch_weights=torch_weights, arch=arch,
                       classifier_dir=classifier_dir, image_size=image_size,
                       dtype=dtype)
  methods = tuple(dict.fromkeys(default_methods(model) if methods is None
                                else methods))
  if not methods:
    raise ValueError("no methods given; e.g. methods=('gcam',)")
  if batch_size < 1:
    raise ValueError(f"batch_size must be at least 1, got {batch_size}")
  if not 0 < crop_fraction <= 1:
    raise ValueError(f"crop fraction {crop_fraction} must be in (0, 1]: the "
                     "share of the shorter side the centre crop keeps")
  if len(background) != 3 or not all(0 <= c <= 1 for c in background):
    raise ValueError(f"background {tuple(background)} must be 3 values in [0, 1]")
  settings = settings or {}
  unknown = sorted(set(settings) - set(methods))
  if unknown:
    raise ValueError(f"settings given for methods not asked for: {unknown}")
  fns = {m: compiled_method(m, model, settings.get(m, {})) for m in methods}
  key = jax.random.key(0) if key is None else key

  items, targets, problems = inputs_lib.gather(images_or_paths, target, model)
  size = model.image_size
  # A shorter list is one smaller batch; a longer one gets the progress bar.
  long_list = len(items) > batch_size
  batch_size = min(batch_size, max(len(items), 1))
  bar = tqdm(total=len(items), unit="img", disable=not (progress and long_list),
             dynamic_ncols=True)

  def outside_bar(callback, *args):
    if callback is None:
      return
    if not bar.disable:
      with bar.external_write_mode():
        callback(*args)
    else:
      callback(*args)

  for error in problems:
    outside_bar(on_failure, error)
  pending: list[tuple[str, np.ndarray, int | None]] = []
  failures: list[images_lib.ImageError] = list(problems)
  batch_index = 0
  try:
    for i, item in enumerate(items):
      try:
        source, image = inputs_lib.prepare(item, i, size, crop_fraction,
                                           background)
        pending.append((source, image, targets[i]))
      except images_lib.ImageError as error:
        failures.append(error)
        outside_bar(on_failure, error)
        bar.update(1)
      if len(pending) == batch_size or (i == len(items) - 1 and pending):
        yield _explain_batch(
            model, fns, pending, batch_size,
            jax.random.fold_in(key, batch_index), failures,
            lambda *args: outside_bar(on_method, *args))
        bar.update(len(pending))
        pending, failures = [], []
        batch_index += 1
    if failures:  # failures after the last batch, or no readable image at all
      yield Explanations.concatenate([], model, methods, failures)
  finally:
    bar.close()


def _explain_batch(model: Model, fns, pending, batch_size: int, key: jax.Array,
                   failures, on_method) -> Explanations:
  """Explains one batch, padded to `batch_size` (one compilation per method)."""
  n = len(pending)
  batch = np.stack([p[1] for p in pending])
  padded = np.concatenate(
      [batch, np.zeros((batch_size - n, *batch.shape[1:]), np.float32)])
  probabilities = np.asarray(predict(model.classifier, padded))
  target = np.array([p[2] if p[2] is not None else probabilities[i].argmax()
                     for i, p in enumerate(pending)] + [0] * (batch_size - n),
                    np.int32)
  maps = {}
  for m, fn in fns.items():
    start = time.perf_counter()
    maps[m] = np.asarray(fn(model.classifier, padded, target, key),
                         np.float32)[:n]
    on_method(m, time.perf_counter() - start)
  return Explanations(model=model, methods=tuple(fns), sources=[p[0] for p in pending],
                      images=batch, maps=maps, targets=target[:n],
                      probabilities=probabilities[:n], failures=list(failures))


def explain_images(images_or_paths, workdir: str | os.PathLike | None = None, *,
                   methods: Sequence[str] | None = None,
                   target: int | str | Sequence[int | str] | None = None,
                   model: Model | None = None,
                   released_dre: str | os.PathLike | None = None,
                   torch_weights: str | os.PathLike | None = None,
                   arch: str | None = None,
                   classifier_dir: str | os.PathLike | None = None,
                   image_size: int | None = None,
                   dtype: str = "float32",
                   crop_fraction: float = images_lib.EVAL_CROP_FRACTION,
                   background: Sequence[float] = images_lib.WHITE,
                   batch_size: int = DEFAULT_BATCH_SIZE,
                   key: jax.Array | None = None,
                   settings: dict[str, dict[str, Any]] | None = None,
                   progress: bool = False) -> Explanations:
  """Explains images with DRE and/or other methods; everything as arrays.

  Args:
    images_or_paths: a path, directory or glob pattern, a Pillow image, an
      array [H, W, 3] or [N, H, W, 3] (uint8 or float in [0, 1]), or a list of
      these (`dre_jax.app.inputs`).
    workdir: what `dre-train` wrote; or `released_dre` + `torch_weights` (the
      authors' ResNet50 generator); or `arch` (a pretrained classifier without
      a generator: "efficientnet_lite0", or any registered architecture with
      `torch_weights`); or `classifier_dir`; or a `model` from `load_model`
      (reused across calls, nothing reloaded).
    methods: names of `dre_jax.explainers` ("dre", "gcam", "vgrad", ...);
      None: the generator's method ("dre"), or without a generator every
      method that needs none (`default_methods`).
    target: None (explain the classifier's prediction), a class index or name
      for every image, or one per input (a directory's or pattern's images
      all take that input's class; the rows of an [N, H, W, 3] array are N
      inputs). A file is explained once per class however often it is given.
    image_size: the side S images are cropped to (default: the classifier's
      training size); crop_fraction: the centre crop's share of the shorter
      side (0.875 as torchvision's ImageNet evaluation; 1 keeps it whole).
    dtype: what the classifier and the generator compute in, "float32" or
      "bfloat16" (for GPUs and TPUs; `load_model`); maps and probabilities
      come back float32.
    background: RGB in [0, 1] under transparent pixels (default white).
    batch_size: images per forward pass; key: for random methods (default
      `jax.random.key(0)`, folded with the batch index); settings:
      {method: {setting: value}}.
    progress: a tqdm progress bar with an ETA when there is more than one
      batch.
  Returns:
    `Explanations` (maps, targets, probabilities, images, failures).
  """
  if model is None:
    model = load_model(workdir, released_dre=released_dre,
                       torch_weights=torch_weights, arch=arch,
                       classifier_dir=classifier_dir, image_size=image_size,
                       dtype=dtype)
  methods = tuple(dict.fromkeys(default_methods(model) if methods is None
                                else methods))
  parts = list(explain_batches(
      images_or_paths, methods=methods, target=target, model=model,
      crop_fraction=crop_fraction, background=background,
      batch_size=batch_size, key=key, settings=settings, progress=progress))
  failures = [f for p in parts for f in p.failures]
  return Explanations.concatenate(parts, model, methods, failures)
