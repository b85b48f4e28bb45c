"""The experiment config an evaluation of a trained workdir runs with.

`for_workdir(workdir, config, **overrides)`: the given config (a configs/*.py
as loaded by `--config`), else the defaults updated with the workdir's
`config.json` (its dataset, model and eval groups, as train.py saved them),
then the evaluation's overrides (methods, num_images, split, mgnet_workdir,
boxes_dir, and the compute dtype config.model.dtype) where they are not None,
and method settings added to config.eval.settings (a later one wins).
`differences(workdir, config)` lists where a given config's dataset or model
differs from the one the workdir was trained with (worth a note, not an error:
a workdir can be evaluated on another split or dataset of the same classes).
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import ml_collections

from dre_jax import config as config_lib
from dre_jax.evaluation import config as eval_config

# --methods, --num_images, ... -> config.eval fields.
EVAL_OVERRIDES = ("methods", "num_images", "split", "mgnet_workdir")


def with_eval(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config with a config.eval group (defaults where it has none)."""
  if "eval" not in config:
    with config.unlocked():
      config.eval = config_lib.eval_defaults()
  return config


def saved(workdir: str) -> ml_collections.ConfigDict:
  """The defaults updated with the workdir's config.json (dataset, model, eval)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{workdir} has no config.json; pass the config it "
                            "was trained with: --config=configs/...py")
  try:
    with open(path) as f:
      saved_config = config_lib.migrate(json.load(f))
  except ValueError as e:
    raise ValueError(f"{path} is damaged ({e}); pass --config=...") from None
  config = with_eval(config_lib.default_config())
  with config.unlocked():
    for group in ("dataset", "model", "eval"):
      for key, value in saved_config.get(group, {}).items():
        if key in config[group]:
          config[group][key] = tuple(value) if isinstance(value, list) else value
  return config


def for_workdir(workdir: str, config: ml_collections.ConfigDict | None = None,
                *, boxes_dir: str | None = None, dtype: str | None = None,
                settings: Sequence[str] = (),
                **overrides) -> ml_collections.ConfigDict:
  """The config evaluating `workdir`: `config` (validated) or its config.json,
  with `overrides` of config.eval (EVAL_OVERRIDES), config.dataset.boxes_dir
  and config.model.dtype (`dtype`) applied where they are not None, and
  `settings` ("smgrad.samples=20", as `dre_jax.explainers.parse_settings`
  reads them) after config.eval.settings."""
  unknown = set(overrides) - set(EVAL_OVERRIDES)
  if unknown:
    raise TypeError(f"unknown overrides {sorted(unknown)}; "
                    f"known: {', '.join(EVAL_OVERRIDES)}, boxes_dir, dtype")
  if config is None:
    config = saved(workdir)
  else:
    config = with_eval(config.copy_and_resolve_references())
    config_lib.validate(config)
  with config.unlocked():
    for field, value in overrides.items():
      if value is not None:
        config.eval[field] = value
    if boxes_dir is not None:
      config.dataset.boxes_dir = boxes_dir
    if dtype is not None:
      config.model.dtype = dtype
    if settings:
      config.eval.settings = tuple(config.eval.settings) + tuple(settings)
  return config


def differences(workdir: str, config: ml_collections.ConfigDict) -> list[str]:
  """Where config's dataset.name or model.name differs from the workdir's
  config.json (empty when the workdir has none)."""
  if not os.path.isfile(os.path.join(workdir, "config.json")):
    return []
  trained = saved(workdir)
  notes = []
  for field in ("dataset.name", "model.name"):
    group, key = field.split(".")
    if trained[group][key] != config[group][key]:
      notes.append(f"--config has {field}={config[group][key]!r}, {workdir} "
                   f"was trained with {trained[group][key]!r}")
  return notes
