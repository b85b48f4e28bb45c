"""Explain a user's own images: `explain_images` (notebooks) and `python explain.py`.

    from dre_jax import explain_images
    out = explain_images(["cat.jpg", "photos/"], workdir="outputs/quickstart",
                         methods=("dre", "gcam"))
    out.maps["dre"]        # [N, S, S] float32, S = the classifier's input size
    out.targets            # [N] int32, the explained classes
    out.probabilities      # [N, K] float32, softmax of the classifier on each image
    out.images             # [N, S, S, 3] float32 in [0, 1], what was explained
    out.top(5)             # ([N, 5] classes, [N, 5] probabilities)
    out.failures           # [ImageError]: files that could not be read, with why

What explains (`load_model`): a workdir that `train.py` wrote (its frozen
classifier and trained DRE generator, `dre_jax.io.load_estimator`), or the
authors' released ResNet50 generator (`model-1.ckpt`) with torchvision's
ResNet50 weights (`resnet50.pth`), fed images scaled to [-1, 1] (the
"minus_one_one" preprocessing of `dre_jax.models.registry`) as the released
code was trained.

Inputs: paths (files, directories, glob patterns; `dre_jax.images`), Pillow
images, or arrays [H, W, 3] / [N, H, W, 3] (float in [0, 1] or uint8). Each is
resized and centre-cropped to S x S (`images.resize_and_crop`; an input that is
already S x S is used as it is). A file that cannot be read is reported in
`failures` and skipped; the rest are explained.

Methods: the explainers of `dre_jax.explainers`, run on the same classifier
and bound with `explainers.bind` to the model's generator as the kind it was
trained as (`Model.objective`): "dre" is M = upsample(C(G(E(I), t))) (Eq. 9's
estimator, `dre_jax.estimator.DRE.explain`) on a DRE generator, "mgnet" needs a
workdir trained with the MGnet objective.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax import explainers
from dre_jax import images as images_lib
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.models import imagenet
from dre_jax.models import registry

DEFAULT_BATCH_SIZE = 8


@dataclasses.dataclass(frozen=True)
class Model:
  """What explains: the frozen classifier and, for "dre", the trained generator.

  Attributes:
    classifier: the frozen classifier (its preprocessing included).
    dre, generator_variables: DRE and its generator variables (None: no DRE).
    image_size: the side S the images are cropped to (a multiple of 32).
    class_names: K names (ImageNet's when K = 1000), or None.
    source: where it was loaded from, for reports.
    workdir: the trained workdir (None for the released weights).
    objective: the stage-2 objective the generator was trained with
      (`config.dre.objective`): "dre" (the released weights too) or "mgnet";
      the methods that need that kind of generator bind it.
  """

  classifier: Classifier
  dre: DRE | None
  generator_variables: Any
  image_size: int
  class_names: tuple[str, ...] | None
  source: str
  workdir: str | None = None
  objective: str = "dre"
  # Compiled methods, by (name, settings): reused by every call with this model.
  compiled: dict = dataclasses.field(default_factory=dict, repr=False,
                                     compare=False)

  def class_name(self, index: int) -> str:
    """The name of class `index` (its first synonym), or "class <index>"."""
    if self.class_names is None:
      return f"class {index}"
    return self.class_names[index].split(", ")[0]


def _class_names(num_classes: int) -> tuple[str, ...] | None:
  if num_classes == imagenet.NUM_CLASSES:
    return tuple(imagenet.imagenet_class_names())
  return None


def load_model(workdir: str | os.PathLike | None = None, *,
               released_dre: str | os.PathLike | None = None,
               torch_weights: str | os.PathLike | None = None,
               image_size: int | None = None) -> Model:
  """The classifier and DRE generator of a workdir, or of the released weights.

  Args:
    workdir: what `train.py` wrote (`classifier/`, `estimator/`).
    released_dre: the authors' `model-1.ckpt` (ResNet50 generator), used with
      `torch_weights`, torchvision's ResNet50 `state_dict` file (`.pth`); the
      classifier then sees images scaled to [-1, 1] as in the released code.
    image_size: the side S of the explained images; default the size the
      generator was trained at (workdir) or 224 (released weights). A multiple
      of 32.
  Raises:
    ValueError, FileNotFoundError: no or both sources, missing or damaged
      files, an image size that is not a multiple of 32.
  """
  from dre_jax import io  # pylint: disable=import-outside-toplevel

  if (workdir is None) == (released_dre is None):
    raise ValueError("give either a trained workdir (--workdir) or the released "
                     "weights (--released-dre=model-1.ckpt "
                     "--torch-weights=resnet50.pth), not "
                     + ("both" if workdir is not None else "neither"))
  if workdir is not None:
    if torch_weights is not None:
      raise ValueError("--torch-weights goes with --released-dre; a workdir "
                       "has its own classifier")
    dre, classifier, variables, meta = io.load_estimator(workdir)
    objective = io.workdir.trained_objective(workdir) or "dre"
    size = image_size or int(meta["image_size"])
    source = os.path.abspath(os.fspath(workdir))
  else:
    if torch_weights is None:
      raise ValueError("--released-dre needs --torch-weights=resnet50.pth, "
                       "torchvision's ResNet50 weights the generator was "
                       "trained on")
    dre, classifier, variables = _load_released(released_dre, torch_weights)
    objective = "dre"
    size = image_size or classifier.spec.input_size
    source = (f"released DRE {os.fspath(released_dre)} on "
              f"{os.fspath(torch_weights)}")
  if size <= 0 or size % 32:
    raise ValueError(f"image size {size} must be a positive multiple of 32 "
                     "(DRE's generator merges taps at strides 4 to 32)")
  # Device arrays: the registry closes over them (numpy leaves would be
  # indexed by tracers inside jit).
  variables = jax.device_put(variables)
  return Model(classifier=classifier, dre=dre, generator_variables=variables,
               image_size=int(size),
               class_names=_class_names(classifier.num_classes), source=source,
               workdir=None if workdir is None else source, objective=objective)


def _load_released(released_dre, torch_weights):
  """(dre, classifier, generator variables) of the released ResNet50 DRE."""
  from dre_jax import io  # pylint: disable=import-outside-toplevel
  from dre_jax.io import pth, released_dre as released  # pylint: disable=import-outside-toplevel
  from dre_jax.io import torch_weights as tw  # pylint: disable=import-outside-toplevel

  for path in (released_dre, torch_weights):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"no such file: {os.fspath(path)}")
  spec = registry.get("resnet50")
  variables = tw.torch_to_flax(spec, pth.load_state_dict(torch_weights))
  mean, std = registry.preprocessing("minus_one_one")
  classifier = Classifier.create(spec, variables, mean=mean, std=std)
  generator_variables = io.import_released_dre(released_dre)
  num_classes = generator_variables["params"]["spatial_filter"]["embedding"].shape[0]
  if num_classes != classifier.num_classes:
    raise ValueError(
        f"{os.fspath(released_dre)} has class embeddings for {num_classes} "
        f"classes but {os.fspath(torch_weights)} is a ResNet50 with "
        f"{classifier.num_classes}; use the weights the generator was trained on")
  dre = DRE.create(spec, num_classes, widths=released.RELEASED_WIDTHS)
  return dre, classifier, generator_variables


# ------------------------------------------------------------------ targets


def resolve_target(target: int | str, model: Model) -> int:
  """A class index from an index (int or digits) or a class name.

  A name matches a whole ImageNet name ("tabby, tabby cat") or one of its
  comma-separated synonyms ("tabby cat"), case-insensitively; failing that, a
  unique class containing it. An ambiguous or unknown name raises a ValueError
  listing the candidates.
  """
  k = model.classifier.num_classes
  if isinstance(target, (int, np.integer)) or (
      isinstance(target, str) and target.strip().isdigit()):
    index = int(target)
    if not 0 <= index < k:
      raise ValueError(f"target class {index} is out of range: the classifier "
                       f"has {k} classes (0 to {k - 1})")
    return index
  name = str(target).strip().lower()
  if model.class_names is None:
    raise ValueError(f"target {target!r}: the classifier's {k} classes have no "
                     "names here; give the class index instead")
  names = [n.lower() for n in model.class_names]
  exact = [i for i, n in enumerate(names)
           if name == n or name in n.split(", ")]
  partial = [i for i, n in enumerate(names) if name in n]
  found = exact or partial
  if len(found) == 1:
    return found[0]
  if found:
    options = "; ".join(f"{i} ({model.class_names[i]})" for i in found[:8])
    raise ValueError(f"target {target!r} names {len(found)} classes: {options}"
                     f"{' ...' if len(found) > 8 else ''}; give the index")
  close = difflib.get_close_matches(
      name, [s for n in names for s in n.split(", ")], n=3)
  hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
  raise ValueError(f"target {target!r} is no class name{hint}; give a class "
                   "index or a name from dre_jax.models.imagenet")


# ------------------------------------------------------------------ methods


def explainer_names() -> list[str]:
  """The method names explain_images accepts: the explainer registry's."""
  return explainers.names()


@jax.jit
def predict(classifier: Classifier, images: jnp.ndarray) -> jnp.ndarray:
  """[N, K] softmax probabilities of the classifier."""
  return jax.nn.softmax(classifier.logits(images), axis=-1)


def _compiled(name: str, model: Model, settings: dict[str, Any]):
  """`_method_fn`, made once per model, method and settings."""
  key = (name, repr(sorted(settings.items())))
  if key not in model.compiled:
    model.compiled[key] = _method_fn(name, model, settings)
  return model.compiled[key]


def _method_fn(name: str, model: Model, settings: dict[str, Any]
               ) -> Callable[[Classifier, jnp.ndarray, jnp.ndarray, jax.Array], jnp.ndarray]:
  """Compiled fn(classifier, images, target, key) -> [N, H, W] for method `name`.

  `explainers.bind` with the model's generator as the kind it was trained as
  (`Model.objective`).
  """
  names = explainer_names()
  if name not in names:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown method {name!r}{hint}; methods: "
                     f"{', '.join(names)}")
  generator = (None if model.dre is None else
               explainers.Generator(model.dre, model.generator_variables))
  try:
    fn = explainers.bind(name, settings=settings, **{model.objective: generator})
  except explainers.MissingGenerator as err:
    have = ("no trained generator (give a workdir or the released weights)"
            if generator is None else
            f"a generator trained with the {model.objective!r} objective")
    raise ValueError(f"{err}; {model.source} has {have}") from None
  return jax.jit(fn)


# ------------------------------------------------------------------ results


@dataclasses.dataclass
class Explanations:
  """The explanations of a list of images (see the module docstring).

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


# ------------------------------------------------------------------ inputs


def _items(images_or_paths) -> list[Any]:
  """Flattens the inputs into a list of paths, Pillow images and [H, W, 3] arrays."""
  from PIL import Image  # pylint: disable=import-outside-toplevel

  if isinstance(images_or_paths, (str, os.PathLike, Image.Image)):
    images_or_paths = [images_or_paths]
  elif isinstance(images_or_paths, (np.ndarray, jax.Array)):
    a = np.asarray(images_or_paths)
    images_or_paths = [a] if a.ndim == 3 else list(a)
  items = []
  for item in images_or_paths:
    if isinstance(item, (np.ndarray, jax.Array)) and np.ndim(item) == 4:
      items += list(np.asarray(item))
    else:
      items.append(item)
  return items


def _as_array(item) -> np.ndarray:
  """A Pillow image or an array -> [H, W, 3] float32 in [0, 1]."""
  from PIL import Image  # pylint: disable=import-outside-toplevel

  if isinstance(item, Image.Image):
    return images_lib.to_rgb(item)
  a = np.asarray(item)
  if a.ndim == 2:
    a = np.repeat(a[..., None], 3, axis=-1)
  if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
    raise ValueError(f"an image array must be [H, W, 3] (or [N, H, W, 3]), got "
                     f"shape {a.shape}")
  if a.dtype == np.uint8:
    a = a.astype(np.float32) / 255.0
  elif np.issubdtype(a.dtype, np.floating):
    a = a.astype(np.float32)
    if a.size and (a.min() < 0 or a.max() > 1):
      raise ValueError(f"float image arrays must be in [0, 1], got values in "
                       f"[{a.min():.3g}, {a.max():.3g}]")
  else:
    raise ValueError(f"image arrays must be uint8 or float in [0, 1], got "
                     f"{a.dtype}")
  if a.shape[-1] == 1:
    a = np.repeat(a, 3, axis=-1)
  elif a.shape[-1] == 4:  # straight alpha on white
    a = a[..., :3] * a[..., 3:] + (1.0 - a[..., 3:])
  return a


def _prepare(item, index: int, size: int, crop_fraction: float,
             background: Sequence[float]) -> tuple[str, np.ndarray]:
  """(source name, [S, S, 3] float32); ImageError for an unusable file."""
  if isinstance(item, (str, os.PathLike)):
    source = os.fspath(item)
    image = images_lib.load(source, background,
                            min_side=int(round(size / crop_fraction)))
  else:
    source = f"image {index}"
    image = _as_array(item)
  if image.shape[:2] != (size, size):
    image = images_lib.resize_and_crop(image, size, crop_fraction)
  return source, image


# ------------------------------------------------------------------ explaining


def explain_batches(images_or_paths, workdir: str | os.PathLike | None = None, *,
                    methods: Sequence[str] = ("dre",),
                    target: int | str | Sequence[int | str] | None = None,
                    model: Model | None = None,
                    released_dre: str | os.PathLike | None = None,
                    torch_weights: str | os.PathLike | None = None,
                    image_size: int | None = None,
                    crop_fraction: float = images_lib.EVAL_CROP_FRACTION,
                    background: Sequence[float] = images_lib.WHITE,
                    batch_size: int = DEFAULT_BATCH_SIZE,
                    key: jax.Array | None = None,
                    settings: dict[str, dict[str, Any]] | None = None,
                    on_failure: Callable[[images_lib.ImageError], None] | None = None,
                    progress: bool = False) -> Iterator[Explanations]:
  """`explain_images` one batch at a time (for long lists: constant memory).

  Yields an `Explanations` per batch of up to `batch_size` readable images;
  the failures of each batch's files are in its `failures` and are passed to
  `on_failure` as they happen. Arguments as `explain_images`.
  """
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  if model is None:
    model = load_model(workdir, released_dre=released_dre,
                       torch_weights=torch_weights, image_size=image_size)
  methods = tuple(dict.fromkeys(methods))
  if not methods:
    raise ValueError("no methods given; e.g. methods=('dre',)")
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
  fns = {m: _compiled(m, model, settings.get(m, {})) for m in methods}
  key = jax.random.key(0) if key is None else key

  inputs = _items(images_or_paths)
  items, targets, problems, seen = [], [], [], set()
  for item, t in zip(inputs, _targets(target, len(inputs), model)):
    if not isinstance(item, (str, os.PathLike)):
      items.append(item)
      targets.append(t)
      continue
    paths, bad = images_lib.expand([item])  # a directory: all with target t
    problems += bad
    for p in paths:
      if (os.path.abspath(p), t) not in seen:  # each file once per class
        seen.add((os.path.abspath(p), t))
        items.append(p)
        targets.append(t)
  size = model.image_size
  # A shorter list is one smaller batch; a longer one gets the progress bar.
  long_list = len(items) > batch_size
  batch_size = min(batch_size, max(len(items), 1))
  bar = tqdm(total=len(items), unit="img", disable=not (progress and long_list),
             dynamic_ncols=True)

  def fail(error):
    if on_failure is not None:
      if not bar.disable:
        with bar.external_write_mode():
          on_failure(error)
      else:
        on_failure(error)

  for error in problems:
    fail(error)
  pending: list[tuple[str, np.ndarray, int | None]] = []
  failures: list[images_lib.ImageError] = list(problems)
  batch_index = 0
  try:
    for i, item in enumerate(items):
      try:
        source, image = _prepare(item, i, size, crop_fraction, background)
        pending.append((source, image, targets[i]))
      except images_lib.ImageError as error:
        failures.append(error)
        fail(error)
        bar.update(1)
      if len(pending) == batch_size or (i == len(items) - 1 and pending):
        yield _explain_batch(model, fns, predict, pending, batch_size,
                             jax.random.fold_in(key, batch_index), failures)
        bar.update(len(pending))
        pending, failures = [], []
        batch_index += 1
    if failures:  # failures after the last batch, or no readable image at all
      yield Explanations.concatenate([], model, methods, failures)
  finally:
    bar.close()


def _targets(target, n: int, model: Model) -> list[int | None]:
  """Per-input class indices (None: the prediction)."""
  if target is None or isinstance(target, (int, np.integer, str)):
    index = None if target is None else resolve_target(target, model)
    return [index] * n
  targets = list(target)
  if len(targets) != n:
    raise ValueError(f"target has {len(targets)} entries for {n} inputs; give "
                     "one class, or one per input")
  return [None if t is None else resolve_target(t, model) for t in targets]


def _explain_batch(model: Model, fns, predict, pending, batch_size: int,
                   key: jax.Array, failures) -> Explanations:
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
    maps[m] = np.asarray(fn(model.classifier, padded, target, key),
                         np.float32)[:n]
  return Explanations(model=model, methods=tuple(fns), sources=[p[0] for p in pending],
                      images=batch, maps=maps, targets=target[:n],
                      probabilities=probabilities[:n], failures=list(failures))


def explain_images(images_or_paths, workdir: str | os.PathLike | None = None, *,
                   methods: Sequence[str] = ("dre",),
                   target: int | str | Sequence[int | str] | None = None,
                   model: Model | None = None,
                   released_dre: str | os.PathLike | None = None,
                   torch_weights: str | os.PathLike | None = None,
                   image_size: int | None = None,
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
      these.
    workdir: what `train.py` wrote; or `released_dre` + `torch_weights` (the
      authors' ResNet50 generator); or a `model` from `load_model` (reused
      across calls, nothing reloaded).
    methods: "dre" and/or names of `dre_jax.explainers` ("gcam", "vgrad", ...).
    target: None (explain the classifier's prediction), a class index or name
      for every image, or one per input (a directory's or pattern's images
      all take that input's class; the rows of an [N, H, W, 3] array are N
      inputs). A file is explained once per class however often it is given.
    image_size: the side S images are cropped to (default: the classifier's
      training size); crop_fraction: the centre crop's share of the shorter
      side (0.875 as torchvision's ImageNet evaluation; 1 keeps it whole).
    background: RGB in [0, 1] under transparent pixels (default white).
    batch_size: images per forward pass; key: for random methods (default
      `jax.random.key(0)`, folded with the batch index); settings:
      {method: {setting: value}}.
    progress: a tqdm progress bar with an ETA when there is more than one
      batch.
  Returns:
    `Explanations` (maps, targets, probabilities, images, failures).
  """
  kwargs = dict(methods=methods, target=target, model=model,
                released_dre=released_dre, torch_weights=torch_weights,
                image_size=image_size, crop_fraction=crop_fraction,
                background=background, batch_size=batch_size, key=key,
                settings=settings, progress=progress)
  if model is None:
    model = load_model(workdir, released_dre=released_dre,
                       torch_weights=torch_weights, image_size=image_size)
    kwargs["model"] = model
  parts = list(explain_batches(images_or_paths, **kwargs))
  failures = [f for p in parts for f in p.failures]
  return Explanations.concatenate(parts, model, tuple(dict.fromkeys(methods)),
                                  failures)
