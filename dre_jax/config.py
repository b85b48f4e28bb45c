"""The experiment config: the defaults (paper Sec. 4.1) and their validation.

Every config in `configs/` starts from `default_config()` and changes what its
setting needs. The defaults come locked (`ml_collections`): a field they do not
have (a typo such as `dre.learning_rte`), in a config file or on the command
line, stops at once, and a value of another type (`epochs="three"`) too.
`validate(config)` checks the values before any work and lists every problem
with its fix.

    config.seed                     one seed for everything (keys and data order)
    config.dataset.*                which TFDS dataset, splits, image size, boxes
    config.model.*                  classifier architecture and its weights
    config.generator.*              the mask generator G and controller C (model
                                    settings: upsampling, cell widths, eta, h)
    config.classifier.*             fine-tuning the classifier (epochs=0: none)
    config.embeddings.*             DRE stage 1: spatial-filter embeddings, Eq. 4
    config.dre.*                    DRE stage 2: the generator under Eq. 9 (or
                                    another objective), its optimiser and data
    config.dre.backgrounds.*        the training backgrounds of Sec. 4.1
    config.dre.constraints.*        Sec. 4.4.3's ad-hoc constraints (Eq. 2 terms)
    config.checkpoint_every_steps   and the other loop settings at the top level
    config.eval.*                   evaluate.py's protocol (`eval_defaults`)

Workdirs written before the generator settings had a group of their own stored
them as `dre.upsample/widths/eta/h`; `migrate` reads such a config.json.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import ml_collections

from dre_jax import controller
from dre_jax import perturbation

ConfigDict = ml_collections.ConfigDict

STAGES = ("classifier", "embeddings", "dre")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine", "step")
# Compute dtypes (`compute_dtype`): float32 everywhere by default; bfloat16
# for GPUs and TPUs. Parameters stay float32 either way.
DTYPES = ("float32", "bfloat16")
# The stage-2 objectives (`config.dre.objective`), each `<name>_objective` of
# `dre_jax.training.objectives`.
OBJECTIVES = ("dre", "mgnet")
# config.dataset.name of a folder of photos, read from config.dataset.data_dir
# (`dre_jax.data.folder`).
FOLDER = "folder"
# Fields that moved, old name -> new name (config.json of older workdirs).
MOVED = {f"dre.{k}": f"generator.{k}" for k in ("upsample", "widths", "eta", "h")}


def default_config() -> ConfigDict:
  """The defaults of every field; the DRE values are the paper's (Sec. 4.1)."""
  c = ConfigDict()
  c.seed = 0

  c.dataset = ConfigDict()
  c.dataset.name = ""              # TFDS name, e.g. "caltech_birds2011", or
                                   # "folder": the photos of data_dir (no labels)
  c.dataset.train_split = "train"
  c.dataset.eval_split = "test"    # classifier accuracy after fine-tuning
  c.dataset.image_size = 224       # a multiple of 32
  c.dataset.num_classes = 0        # classifier head size; 0: from the weights
  c.dataset.data_dir = ""          # "" = TFDS's default directory; for
                                   # "folder", the folder or a glob pattern
  c.dataset.manual_dir = ""        # imagenet2012: where the ILSVRC tars are
  # imagenet2012: the ILSVRC2012 validation box XMLs (ILSVRC2012_bbox_val_v3),
  # for M_E (Eq. 11); the other datasets carry their boxes.
  c.dataset.boxes_dir = ""
  # Let TFDS download and prepare a dataset that is not prepared (network).
  # The offline composites are built without it.
  c.dataset.download = False
  c.dataset.shuffle_buffer = 10_000
  # Data shards of the training split, each read by one process; 0 = one per
  # process. A fixed value makes the batches independent of the process count.
  c.dataset.num_shards = 0

  c.model = ConfigDict()
  c.model.name = ""                # a name of `dre_jax.models.names()`
  c.model.torch_weights = ""       # torchvision .pth state_dict to start from
  c.model.checkpoint = ""          # or a classifier directory (dre_jax.io)
  c.model.dtype = "float32"        # compute dtype: float32 or bfloat16

  c.generator = ConfigDict()       # G and C: model settings (Sec. 3.2-3.3, 4.1)
  c.generator.upsample = "subpixel"  # or "transposed" (the paper's text)
  c.generator.widths = ()          # () = the architecture's (paper) widths
  c.generator.eta = controller.ETA   # Eq. 7
  c.generator.h = controller.H       # Eq. 7

  c.classifier = ConfigDict()      # fine-tuning; frozen afterwards
  c.classifier.epochs = 0          # 0: use the weights as they are
  c.classifier.batch_size = 64
  c.classifier.optimizer = "sgd"
  c.classifier.learning_rate = 0.01
  c.classifier.lr_schedule = "cosine"
  c.classifier.lr_step_epochs = 30   # "step": multiply by lr_step_factor ...
  c.classifier.lr_step_factor = 0.1  # ... every lr_step_epochs epochs
  c.classifier.momentum = 0.9
  c.classifier.weight_decay = 1e-4
  c.classifier.augment = True      # random-resized crop + flip

  c.embeddings = ConfigDict()      # DRE stage 1, Eq. 4
  c.embeddings.epochs = 1
  c.embeddings.batch_size = 64
  c.embeddings.learning_rate = 1e-3
  c.embeddings.fake_prob = 0.5

  c.dre = ConfigDict()             # DRE stage 2, Eq. 9
  c.dre.epochs = 10
  c.dre.batch_size = 64
  c.dre.learning_rate = 1e-2
  c.dre.lr_halve_every_epochs = 3
  # The stage-2 loss, by name (`dre_jax.training.objectives`): "dre" is Eq. 9,
  # "mgnet" Dabkowski & Gal's Eq. 2 (`objectives.mgnet_objective`).
  c.dre.objective = "dre"
  # Sec. 4.4.3: Eq. 2's terms added to Eq. 9, weighted (0 = off, the paper's
  # DRE): area lambda_av, smoothness lambda_tv, background lambda_bg.
  c.dre.constraints = ConfigDict({"area": 0.0, "smoothness": 0.0,
                                  "background": 0.0})
  c.dre.backgrounds = ConfigDict(
      dataclasses.asdict(perturbation.BackgroundConfig()))

  c.checkpoint_every_steps = 500
  c.keep_checkpoints = 3
  # Each training step's batch computed as this many equal slices in turn,
  # their gradients averaged (`dre_jax.training.steps.value_and_grad_over`):
  # the same update except for BatchNorm's per-slice statistics. 4 (slices of
  # 16 at batch 64) trains about twice as fast on a CPU; 1 on accelerators.
  c.microbatches = 1
  c.log_every_steps = 50

  c.eval = eval_defaults()  # evaluate.py's protocol (Sec. 4.1-4.2)
  c.lock()
  return c


# The paper's tie-breaker "adds a smoothed mask over the original one with a
# small weight" (Sec. 4.2.1) and gives neither. Both maps are on [0, 1] (the
# map min-max normalised, its blurred copy), so a weight of 1e-3 reorders
# only pixels whose scores differ by less than 0.1% of the map's range (a
# quarter of one level of an 8-bit display): plateaus and float32 near-ties
# (saturated masks, CAM zeros, the controller's underflow) follow the
# smoothed map, every visible difference of score keeps its order. Exact ties
# left then follow the smoothed map as a second key (`metrics.TieBreak`).
TIE_BREAK_WEIGHT = 1e-3

# The normalisation pools of M_F (`config.eval.pools`): the paper's Tables 3
# (ImageNet, CUB) and 5 (Places365) normalise over DRE and the nine baselines
# of Sec. 4.1; DRE+ (Sec. 4.4.1, shown in Fig. 10 (a) beside DRE and MGnet,
# without a table in the paper) is normalised with what it is built from.
PAPER_POOLS = ("paper=dre,mgnet,mpert,finv,xpert,gcam,gcam++,vgrad,smgrad,itgrad",
               "dre+=dre,dre+self,dre+mgnet,mgnet")


def eval_defaults() -> ConfigDict:
  """The defaults of `config.eval`, the evaluation protocol (paper Sec. 4.1-4.2).

    config.eval.methods           "dre,gcam,..." registered explainers; "" = all
                                  that the workdir can run
    config.eval.split             "" = config.dataset.eval_split
    config.eval.num_images        the seeded random sample of the split, the
                                  same images for every method (paper: 10,000
                                  ImageNet validation, 2,000 CUB test,
                                  `paper_sample`); 0 = all
    config.eval.seed              seeds the sample and the random explainers
    config.eval.batch_size        global batch, split over all devices
    config.eval.shard_size        images per resumable shard (and the memory
                                  bound: one shard is held at a time)
    config.eval.num_steps         m = 1 / Delta of Eq. 10 (paper: 32)
    config.eval.steps_per_call    insertion ratios run together (memory)
    config.eval.tie_break_sigma   the tie-breaker's smoothing, fraction of the
                                  image side; 0 = off (`dre_jax.metrics.TieBreak`)
    config.eval.tie_break_weight  the smoothed copy's weight, added to the
                                  min-max normalised map (`TIE_BREAK_WEIGHT`);
                                  0 = only exact ties move
    config.eval.tie_break_effect_images  images on which M_F is also computed
                                  without the tie-breaker, to show its effect
    config.eval.pools             the methods whose M_F is min-max normalised
                                  together per image, "NAME=m1,m2,..." each;
                                  default the paper's Tables 3 and 5 (DRE and
                                  the nine baselines) and DRE+ with DRE and
                                  MGnet in a table of its own; () = one pool
                                  of every evaluated method
    config.eval.bootstrap_resamples  resamples of the paired bootstrap
                                  intervals of DRE minus each method (seeded
                                  with config.eval.seed)
    config.eval.explainability    M_E (Eq. 11) where the dataset has boxes
    config.eval.figure_images     rows of the saliency figures
    config.eval.settings          explainer settings, ("smgrad.samples=20",
                                  "gcam++.tap='layer3'", ...); defaults are
                                  `dre_jax.explainers.default_config(name)`
    config.eval.mgnet_workdir     a workdir trained with config.dre.objective
                                  = "mgnet" (same classifier): for mgnet and
                                  dre+mgnet
    config.eval.sanity_images     the model-parameter randomisation test
                                  (`dre_jax.evaluation.sanity`) on the first
                                  this many images of the sample; 0 = off

  The checks against the explainer registry are `dre_jax.evaluation.config`'s.
  """
  c = ConfigDict()
  c.methods = ""
  c.split = ""
  c.num_images = 0
  c.seed = 0
  c.batch_size = 16
  c.shard_size = 256
  c.num_steps = 32
  c.steps_per_call = 4
  c.tie_break_sigma = 1.0 / 16
  c.tie_break_weight = TIE_BREAK_WEIGHT
  c.tie_break_effect_images = 256
  c.pools = PAPER_POOLS
  c.bootstrap_resamples = 10_000
  c.explainability = True
  c.figure_images = 6
  c.settings = ()
  c.mgnet_workdir = ""
  c.sanity_images = 0
  return c


# The paper's sample sizes (Sec. 4.2.1) by TFDS name; `paper_sample(name)`.
PAPER_SAMPLE = {"imagenet2012": 10_000, "caltech_birds2011": 2_000}


def compute_dtype(name: str) -> jnp.dtype:
  """The compute dtype called `name`, one of DTYPES (`config.model.dtype`,
  the --dtype of dre-evaluate and dre-explain): what the classifier and the
  generators compute in; their parameters stay float32 and logits and maps
  come back float32. Another name is a ValueError naming the choices."""
  if name not in DTYPES:
    raise ValueError(f"compute dtype {name!r} is not one of "
                     f"{', '.join(DTYPES)} (bfloat16 for GPUs and TPUs)")
  return jnp.dtype(name)


def paper_sample(dataset_name: str) -> int:
  """The paper's number of evaluated images for a dataset (0 = the whole split)."""
  return PAPER_SAMPLE.get(dataset_name.split("/")[0].split(":")[0], 0)


def shrink_for_local_run(config: ConfigDict, image_size: int = 64,
                         batch_size: int = 8, num_examples: int = 64) -> ConfigDict:
  """The `:runlocal` variant: the same stages on a few small batches."""
  config.dataset.image_size = image_size
  config.dataset.train_split = f"{config.dataset.train_split}[:{num_examples}]"
  config.dataset.eval_split = f"{config.dataset.eval_split}[:{num_examples}]"
  config.dataset.shuffle_buffer = num_examples
  for stage in (config.classifier, config.embeddings, config.dre):
    stage.batch_size = batch_size
    stage.epochs = min(stage.epochs, 1)
  config.checkpoint_every_steps = 4
  config.log_every_steps = 1
  return config


def parse_args(arg: str | None, allowed: tuple[str, ...] = ()) -> dict[str, str]:
  """`"runlocal,arch=vgg19"` -> {"runlocal": "", "arch": "vgg19"}, checked."""
  args = {}
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in ("runlocal", *allowed):
      raise ValueError(
          f"unknown config argument {key!r}; this config takes "
          f"{', '.join(('runlocal', *allowed))} (e.g. "
          "--config=configs/x.py:runlocal)")
    args[key] = value
  return args


def validate(config: ConfigDict) -> None:
  """Raises ValueError listing every wrong value with its fix, or returns.

  Unknown fields and wrong types are ml_collections' errors, raised where the
  field is set (the defaults are locked).
  """
  errors: list[str] = []
  from dre_jax import models  # pylint: disable=import-outside-toplevel
  d, m = config.dataset, config.model
  if not d.name:
    errors.append("config.dataset.name is empty; set a TFDS name such as "
                  "caltech_birds2011")
  if m.name not in models.names():
    errors.append(f"config.model.name={m.name!r} is not one of "
                  f"{', '.join(models.names())}")
  if d.image_size <= 0 or d.image_size % 32:
    errors.append(f"config.dataset.image_size={d.image_size} must be a "
                  "positive multiple of 32 (the generator's coarsest tap has "
                  "stride 32)")
  if m.torch_weights and m.checkpoint:
    errors.append("set only one of config.model.torch_weights and "
                  "config.model.checkpoint")
  if m.dtype not in DTYPES:
    errors.append(f"config.model.dtype={m.dtype!r} is not one of {DTYPES}")
  c = config.classifier
  if c.optimizer not in OPTIMIZERS:
    errors.append(f"config.classifier.optimizer={c.optimizer!r} is not one "
                  f"of {OPTIMIZERS}")
  if c.lr_schedule not in LR_SCHEDULES:
    errors.append(f"config.classifier.lr_schedule={c.lr_schedule!r} is not "
                  f"one of {LR_SCHEDULES}")
  if c.epochs == 0 and not (m.torch_weights or m.checkpoint):
    errors.append("the classifier has no weights: set config.model."
                  "torch_weights or config.model.checkpoint, or train it with "
                  "config.classifier.epochs > 0 (DRE explains a trained "
                  "classifier)")
  if c.epochs > 0 and d.num_classes <= 0:
    errors.append("fine-tuning the classifier needs config.dataset."
                  "num_classes (the size of its new head)")
  g = config.generator
  if g.upsample not in ("subpixel", "transposed"):
    errors.append(f"config.generator.upsample={g.upsample!r} is not "
                  "'subpixel' or 'transposed'")
  if g.widths and len(g.widths) != 3:
    errors.append(f"config.generator.widths={tuple(g.widths)} must give 3 "
                  "cell widths, or () for the architecture's")
  if config.dre.objective not in OBJECTIVES:
    errors.append(f"config.dre.objective={config.dre.objective!r} is not one "
                  f"of {OBJECTIVES}")
  for name, weight in config.dre.constraints.items():
    if weight < 0:
      errors.append(f"config.dre.constraints.{name}={weight} must be >= 0 "
                    "(0 turns the constraint off)")
  if d.name == FOLDER and not d.data_dir:
    errors.append("config.dataset.name='folder' reads the photos of "
                  "config.dataset.data_dir, which is empty; set it to a folder "
                  "or a glob pattern (configs/folder.py:path=DIR)")
  if d.name == FOLDER and config.classifier.epochs > 0:
    errors.append("a folder of photos has no labels to fine-tune the "
                  "classifier on: set config.classifier.epochs=0 (DRE explains "
                  "the classifier's own predictions)")
  if d.boxes_dir and d.name != "imagenet2012":
    errors.append(f"config.dataset.boxes_dir is for imagenet2012 (its "
                  f"validation box XMLs); {d.name} carries its own boxes or "
                  "has none: leave it empty")
  for stage in STAGES:
    s = config[stage]
    if s.epochs < 0 or s.batch_size <= 0:
      errors.append(f"config.{stage}: epochs must be >= 0 and batch_size > 0, "
                    f"got {s.epochs} and {s.batch_size}")
  if config.dre.epochs == 0:
    errors.append("config.dre.epochs is 0: stage 2 trains the estimator")
  for key in ("checkpoint_every_steps", "keep_checkpoints", "log_every_steps"):
    if config[key] <= 0:
      errors.append(f"config.{key} must be > 0, got {config[key]}")
  k = config.microbatches
  if k < 1:
    errors.append(f"config.microbatches must be >= 1 (1: the whole batch at "
                  f"once), got {k}")
  else:
    for stage in STAGES:
      if config[stage].batch_size % k:
        errors.append(f"config.microbatches={k} does not divide "
                      f"config.{stage}.batch_size={config[stage].batch_size}: "
                      "choose a divisor of every stage's batch size")
  if errors:
    raise ValueError("invalid config:\n  " + "\n  ".join(errors))


# The paper's datasets (Sec. 4.2-4.3) and the offline composites, by short name.
DATASETS = {
    "cub": dict(name="caltech_birds2011", train_split="train",
                eval_split="test", num_classes=200),
    "imagenet": dict(name="imagenet2012", train_split="train",
                     eval_split="validation", num_classes=1000),
    "places": dict(name="places365_small", train_split="train",
                   eval_split="validation", num_classes=365),
    "composites": dict(name="tuxpaint_composites/coarse_224",
                       train_split="train", eval_split="test",
                       num_classes=14),
}


def paper_config(dataset: str, arch: str, classifier_epochs: int = 0,
                 arg: str | None = None, allowed: tuple[str, ...] = ()
                 ) -> ConfigDict:
  """The paper's setting for one dataset and classifier architecture.

  classifier_epochs > 0 fine-tunes the classifier first (SGD, momentum 0.9,
  cosine schedule from 0.01, weight decay 1e-4, batch 64, augmented crops):
  from `model.torch_weights` when given (torchvision ImageNet weights), else
  from scratch. The DRE stages use the defaults (Sec. 4.1). `arg`: the
  config file's argument; "runlocal" shrinks everything to a few 64-px
  batches, `allowed` names the other arguments the config file takes.
  """
  config = default_config()
  config.dataset.update(DATASETS[dataset])
  config.model.name = arch
  config.classifier.epochs = classifier_epochs
  config.eval.num_images = paper_sample(config.dataset.name)
  if "runlocal" in parse_args(arg, allowed):
    shrink_for_local_run(config)
  return config


def migrate(old: dict[str, Any]) -> dict[str, Any]:
  """A config.json dict of an older workdir in today's field names (`MOVED`)."""
  new = {k: (dict(v) if isinstance(v, dict) else v) for k, v in old.items()}
  for old_name, new_name in MOVED.items():
    group, key = old_name.split(".")
    if key in new.get(group, {}):
      new_group, new_key = new_name.split(".")
      new.setdefault(new_group, {})[new_key] = new[group].pop(key)
  return new
