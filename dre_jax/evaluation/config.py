"""`config.eval`: the evaluation protocol's settings (paper Sec. 4.1-4.2).

    config.eval.methods           "dre,gcam,..." registered explainers; "" = all
                                  that the workdir can run
    config.eval.split             "" = config.dataset.eval_split
    config.eval.num_images        the seeded random sample of the split, the
                                  same images for every method (paper: 10,000
                                  ImageNet validation, 2,000 CUB test); 0 = all
    config.eval.seed              seeds the sample and the random explainers
    config.eval.batch_size        global batch, split over all devices
    config.eval.shard_size        images per resumable shard (and the memory
                                  bound: one shard is held at a time)
    config.eval.num_steps         m = 1 / Delta of Eq. 10 (paper: 32)
    config.eval.steps_per_call    insertion ratios run together (memory)
    config.eval.tie_break_sigma   the tie-breaker's smoothing, fraction of the
                                  image side; 0 = off (`dre_jax.metrics.TieBreak`)
    config.eval.tie_break_weight  0 = only exact ties move; > 0 = additive
    config.eval.tie_break_effect_images  images on which M_F is also computed
                                  without the tie-breaker, to show its effect
    config.eval.explainability    M_E (Eq. 11) where the dataset has boxes
    config.eval.figure_images     rows of the saliency figures
    config.eval.settings          explainer settings, ("smgrad.samples=20",
                                  "gcam++.tap='layer3'", ...); defaults are
                                  `dre_jax.explainers.default_config(name)`
    config.eval.mgnet_workdir     a workdir trained with config.dre.objective
                                  = "mgnet" (same classifier): for mgnet and
                                  dre+mgnet

Only light imports here: `dre_jax.config` includes this group.
"""

from __future__ import annotations

import ast

import ml_collections


def default_config() -> ml_collections.ConfigDict:
  """The defaults of `config.eval` (the paper's protocol)."""
  c = ml_collections.ConfigDict()
  c.methods = ""
  c.split = ""
  c.num_images = 0
  c.seed = 0
  c.batch_size = 16
  c.shard_size = 256
  c.num_steps = 32
  c.steps_per_call = 4
  c.tie_break_sigma = 1.0 / 16
  c.tie_break_weight = 0.0
  c.tie_break_effect_images = 256
  c.explainability = True
  c.figure_images = 6
  c.settings = ()
  c.mgnet_workdir = ""
  return c


# The paper's sample sizes (Sec. 4.2.1) by TFDS name; `paper_sample(name)`.
PAPER_SAMPLE = {"imagenet2012": 10_000, "caltech_birds2011": 2_000}


def paper_sample(dataset_name: str) -> int:
  """The paper's number of evaluated images for a dataset (0 = the whole split)."""
  return PAPER_SAMPLE.get(dataset_name.split("/")[0].split(":")[0], 0)


def method_names(c) -> list[str]:
  """config.eval.methods as a list; all registered explainers when empty."""
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  names = [n.strip() for n in c.methods.split(",") if n.strip()]
  for name in names:
    explainers.method(name)  # a KeyError with a "did you mean" for a typo
  return names or explainers.names()


def validate(c) -> None:
  """Raises ValueError naming the field and the fix for a wrong `config.eval`."""
  if c.num_images < 0:
    raise ValueError(f"config.eval.num_images must be >= 0 (0: the whole "
                     f"split), got {c.num_images}")
  for name in ("batch_size", "shard_size", "num_steps", "steps_per_call"):
    if c[name] <= 0:
      raise ValueError(f"config.eval.{name} must be > 0, got {c[name]}")
  if c.tie_break_sigma < 0 or c.tie_break_weight < 0:
    raise ValueError("config.eval.tie_break_sigma and tie_break_weight must be "
                     ">= 0 (sigma 0 switches the tie-breaker off)")
  method_names(c)
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  for name, settings in parse_settings(c.settings).items():
    explainers.check_settings(name, settings)  # names the known ones


def parse_settings(items) -> dict[str, dict[str, object]]:
  """("smgrad.samples=20", "gcam++.tap='layer3'") -> {"smgrad": {"samples": 20}, ...}.

  Values are Python literals (numbers, strings in quotes, tuples, True/False);
  anything else is taken as a string.
  """
  if isinstance(items, str):
    items = [items] if items else []
  out: dict[str, dict[str, object]] = {}
  for item in items:
    name_key, sep, value = str(item).partition("=")
    method, dot, key = name_key.strip().rpartition(".")
    if not (sep and dot and method and key):
      raise ValueError(
          f"config.eval.settings item {item!r} must read METHOD.SETTING=VALUE, "
          "e.g. 'smgrad.samples=20'")
    try:
      parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      parsed = value.strip()
    out.setdefault(method, {})[key] = parsed
  return out
