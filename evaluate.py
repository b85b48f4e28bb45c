r"""The paper's comparison (Sec. 4) on a trained workdir: every explainer, Tables 2-5, figures.

    python evaluate.py --workdir=runs/cub_resnet                 # its config.json
    python evaluate.py --config=configs/cub_resnet.py --workdir=runs/cub_resnet \
        --config.eval.num_images=2000 --methods=dre,gcam,gcam++,vgrad
    python evaluate.py --workdir=runs/imagenet_resnet,runs/imagenet_vgg,...   # one
        column per classifier in the combined tables (--compare_dir)

Runs the protocol of `dre_jax.evaluation` (the same seeded sample of the
evaluation split for every method, the explained class t = the classifier's
prediction, M_F of Eq. 10 raw and normalised across methods, M_E of Eq. 11
where the dataset has boxes, the maps' skewness, seconds per image) and writes
`<workdir>/eval/`: results.json, tables.md, per_image.npz, figures/ (all
replaced together). Killed at any point, the same command resumes where it
stopped and ends with the same numbers. `--max_shards=K` stops after K shards
and writes `<workdir>/eval_partial/` instead, never replacing `eval/`.

The config is the workdir's config.json unless --config is given; the image
size is the one the estimator was trained at (--image_size overrides). Runs on
every device; multi-host as train.py (--coordinator_address, --num_processes,
--process_id, or a detected TPU pod / SLURM / Open MPI job).
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import ml_collections

from dre_jax import cli
from dre_jax import config as config_lib
from dre_jax import parallel
from dre_jax.evaluation import config as eval_config
from dre_jax.io import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The experiment config (configs/*.py); default: the "
    "workdir's config.json.", lock_config=True)
_WORKDIR = flags.DEFINE_list(
    "workdir", None, "What train.py trained; several (comma-separated) give one "
    "column each in the combined tables.")
_METHODS = flags.DEFINE_string(
    "methods", None, "Explainers, e.g. dre,gcam,vgrad (config.eval.methods; "
    "default all that the workdir can run).")
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", None, "The sample's size (config.eval.num_images; 0 = the "
    "whole split).")
_SPLIT = flags.DEFINE_string("split", None, "Split (config.eval.split).")
_MGNET = flags.DEFINE_string("mgnet_workdir", None,
                             "MGnet's workdir (config.eval.mgnet_workdir).")
_BOXES = flags.DEFINE_string(
    "boxes_dir", None, "ImageNet's validation box XMLs for M_E "
    "(config.dataset.boxes_dir).")
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "Evaluate at this size (default: the estimator's).")
_MAX_SHARDS = flags.DEFINE_integer(
    "max_shards", None, "Stop after this many shards (a partial result in "
    "eval_partial/).")
_COMPARE_DIR = flags.DEFINE_string(
    "compare_dir", None, "With several workdirs: where the combined tables.md "
    "and workdirs.png go (default: <parent of the first>/comparison).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show the progress bar.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "host:port of process 0 (multi-process runs "
    "outside TPU pods/SLURM).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index.")
flags.mark_flags_as_required(["workdir"])


def _saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The defaults updated with the workdir's config.json (dataset, eval)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{workdir} has no config.json; pass the config it "
                            "was trained with: --config=configs/...py")
  try:
    with open(path) as f:
      saved = config_lib.migrate(json.load(f))
  except ValueError as e:
    raise ValueError(f"{path} is damaged ({e}); pass --config=...") from None
  config = _with_eval(config_lib.default_config())
  with config.unlocked():
    for group in ("dataset", "model", "eval"):
      for key, value in saved.get(group, {}).items():
        if key in config[group]:
          config[group][key] = tuple(value) if isinstance(value, list) else value
  return config


def _with_eval(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config with a config.eval group (defaults where it has none)."""
  if "eval" not in config:
    with config.unlocked():
      config.eval = eval_config.default_config()
  return config


def _config_for(workdir: str) -> ml_collections.ConfigDict:
  if _CONFIG.value is None:
    config = _saved_config(workdir)
  else:
    config = _with_eval(_CONFIG.value.copy_and_resolve_references())
    config_lib.validate(config)
    saved_path = os.path.join(workdir, "config.json")
    if os.path.isfile(saved_path):
      saved = _saved_config(workdir)
      for field in ("dataset.name", "model.name"):
        group, key = field.split(".")
        if saved[group][key] != config[group][key]:
          print(f"[evaluate] note: --config has {field}={config[group][key]!r}, "
                f"{workdir} was trained with {saved[group][key]!r}")
  with config.unlocked():
    for flag, field in ((_METHODS, "methods"), (_NUM_IMAGES, "num_images"),
                        (_SPLIT, "split"), (_MGNET, "mgnet_workdir")):
      if flag.value is not None:
        config.eval[field] = flag.value
    if _BOXES.value is not None:
      config.dataset.boxes_dir = _BOXES.value
  return config


def _summary_line(results) -> str:
  """The quickstart's line: N images, DRE's (or the first method's) metrics."""
  methods = results["methods"]
  name = "dre" if "dre" in methods else next(iter(methods))
  m = methods[name]
  summary = {k: round(m[k], 2) for k in ("faithfulness", "explainability",
                                         "skewness") if m[k] is not None}
  who = "" if name == "dre" else f" ({name})"
  return (f"[evaluate] {results['num_images']} images of {results['dataset']}/"
          f"{results['split']}{who}: {json.dumps(summary)}")


def _print_methods(results) -> None:
  print(f"[evaluate] {'method':<10} {'M_F':>7} {'M_F norm':>8} {'M_E':>7} "
        f"{'skew':>6} {'s/img':>8}")
  fmt = lambda v, w, d=2: f"{v:>{w}.{d}f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
  for name, m in results["methods"].items():
    print(f"[evaluate] {name:<10} {fmt(m['faithfulness'], 7)} "
          f"{fmt(m['faithfulness_normalised'], 8)} {fmt(m['explainability'], 7)} "
          f"{fmt(m['skewness'], 6)} {fmt(m['seconds_per_image'], 8, 4)}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax and TFDS INFO lines
  parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  workdirs = [workdir_lib.resolve(w) for w in _WORKDIR.value]
  configs = [_config_for(w) for w in workdirs]
  for config in configs:  # a mistake stops the run before any work
    eval_config.validate(config.eval)
  from dre_jax.evaluation import runner  # pylint: disable=import-outside-toplevel
  all_results = []
  for workdir, config in zip(workdirs, configs):
    results = runner.evaluate_workdir(
        workdir, config, max_shards=_MAX_SHARDS.value,
        image_size=_IMAGE_SIZE.value, progress=_PROGRESS.value)
    all_results.append(results)
    if jax.process_index() != 0:
      continue
    _print_methods(results)
    print(_summary_line(results))
    if "report" in results:
      print(f"[evaluate] wrote {results['report']}/ (results.json, tables.md, "
            "per_image.npz, figures/)")
  if len(workdirs) > 1 and all_results and "report" in all_results[0]:
    from dre_jax.evaluation import compare  # pylint: disable=import-outside-toplevel
    out = _COMPARE_DIR.value or os.path.join(os.path.dirname(workdirs[0]),
                                             "comparison")
    for path in compare.write(workdirs, all_results, workdir_lib.resolve(out)):
      print(f"[evaluate] wrote {path}")


if __name__ == "__main__":
  cli.run(main)
