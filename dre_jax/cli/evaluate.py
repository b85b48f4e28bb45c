r"""`dre-evaluate` (`python evaluate.py`): the paper's comparison (Sec. 4) on a trained workdir.

Every explainer, Tables 2-5, figures:

    dre-evaluate --workdir=runs/cub_resnet                 # its config.json
    dre-evaluate --config=configs/cub_resnet.py --workdir=runs/cub_resnet \
        --num_images=2000 --methods=dre,gcam,gcam++,vgrad --set=smgrad.samples=20
    dre-evaluate --workdir=runs/imagenet_resnet,runs/imagenet_vgg,...   # one
        column per classifier in the combined tables (--compare_dir)

Runs the protocol of `dre_jax.evaluation` (the same seeded sample of the
evaluation split for every method, the explained class t = the classifier's
prediction, M_F of Eq. 10 raw and normalised across methods, M_E of Eq. 11
where the dataset has boxes, the maps' skewness, seconds per image) and writes
`<workdir>/eval/`: results.json, tables.md, per_image.npz, figures/ (all
replaced together). Killed at any point, the same command resumes where it
stopped and ends with the same numbers. `--max_shards=K` stops after K shards
and writes `<workdir>/eval_partial/` instead, never replacing `eval/`.
`--shards=K,L` computes only shards K and L (of config.eval.shard_size
images each), so that processes on several cores or machines with a shared
workdir split a long evaluation (one process per core:
`taskset -c 0 dre-evaluate ... --shards=0,2` beside `taskset -c 1 ...
--shards=1,3`); a (method, shard) another process has written is skipped.
The process that finds every shard written (or the same command without
--shards, later) runs the randomisation test and writes the report.

Before it starts, it prints an estimate of its run time (the methods' classifier
passes times a measured pass, `dre_jax.evaluation.estimate`); on a CPU it
refuses a run estimated over an hour unless --num_images or --yes is given.
Method settings are `--set=METHOD.NAME=VALUE` (repeatable, as dre-explain;
added to config.eval.settings). The classifier and the generators compute in
config.model.dtype (--dtype): float32, the default and the one for CPUs, or
bfloat16 for GPUs and TPUs; the maps and the metrics are computed from float32
outputs either way. Flag names take dashes or underscores.

The config is the workdir's config.json unless --config is given
(`dre_jax.evaluation.workdir_config`); the image size is the one the estimator
was trained at (--image_size overrides). Runs on every device; multi-host as
dre-train (--coordinator_address, --num_processes, --process_id, or a detected
TPU pod / SLURM / Open MPI job). Needs the `train` extra (TensorFlow, TFDS).
"""

import os

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from dre_jax import cli
from dre_jax import parallel
from dre_jax.evaluation import config as eval_config
from dre_jax.evaluation import tables
from dre_jax.evaluation import workdir_config
from dre_jax.io import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The experiment config: a file (configs/*.py) or an "
    "installed config's name; default: the workdir's config.json.",
    lock_config=True)
_WORKDIR = flags.DEFINE_list(
    "workdir", None, "What train.py trained; several (comma-separated) give one "
    "column each in the combined tables.")
_METHODS = flags.DEFINE_list(
    "methods", None, "Comma-separated explainers, e.g. dre,gcam,vgrad "
    "(config.eval.methods; default all that the workdir can run).")
_SET = flags.DEFINE_multi_string(
    "set", [], "A method setting, METHOD.NAME=VALUE (repeatable), e.g. "
    "--set=smgrad.samples=20 (added to config.eval.settings).")
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", None, "The sample's size (config.eval.num_images; 0 = the "
    "whole split).")
_YES = flags.DEFINE_bool(
    "yes", False, "Run even where the estimate is over an hour on a CPU.")
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
_SHARDS = flags.DEFINE_list(
    "shards", None, "Compute only these shards (e.g. 0,1), so that several "
    "processes share one long evaluation of a workdir; the one that finds "
    "every shard written runs the sanity test and writes the report.")
_COMPARE_DIR = flags.DEFINE_string(
    "compare_dir", None, "With several workdirs: where the combined tables.md "
    "and workdirs.png go (default: <parent of the first>/comparison).")
_DTYPE = flags.DEFINE_string(
    "dtype", None, "Compute dtype of the classifier and the generators: "
    "float32, or bfloat16 for GPUs and TPUs (config.model.dtype; weights stay "
    "float32).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show the progress bar.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "host:port of process 0 (multi-process runs "
    "outside TPU pods/SLURM).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index.")
flags.mark_flags_as_required(["workdir"])


def _shard_list(values: list[str] | None) -> list[int] | None:
  """--shards as sorted shard indices (None without the flag)."""
  if values is None:
    return None
  try:
    shards = sorted({int(v) for v in values})
  except ValueError:
    shards = []
  if not shards or shards[0] < 0:
    raise ValueError(f"--shards={','.join(values)}: give shard indices "
                     "from 0, e.g. --shards=0,2")
  return shards


# The longest run on a CPU started without --num_images or --yes.
CPU_LIMIT_SECONDS = 3600


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax and TFDS INFO lines
  parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  if _DTYPE.value is not None:
    cli.check_dtype(_DTYPE.value)
  workdirs = [workdir_lib.resolve(w) for w in _WORKDIR.value]
  configs = []
  for workdir in workdirs:
    config = workdir_config.for_workdir(
        workdir, _CONFIG.value,
        methods=None if _METHODS.value is None else ",".join(_METHODS.value),
        num_images=_NUM_IMAGES.value, split=_SPLIT.value,
        mgnet_workdir=_MGNET.value, boxes_dir=_BOXES.value,
        dtype=_DTYPE.value, settings=_SET.value)
    if _CONFIG.value is not None:
      for note in workdir_config.differences(workdir, config):
        print(f"[evaluate] note: {note}")
    configs.append(config)
  for config in configs:  # a mistake stops the run before any work
    eval_config.validate(config.eval)
  shards = _shard_list(_SHARDS.value)
  from dre_jax.evaluation import runner  # pylint: disable=import-outside-toplevel
  plans = [runner.plan(workdir, config, image_size=_IMAGE_SIZE.value,
                       log=_log) for workdir, config in zip(workdirs, configs)]
  _estimate(plans, shards)
  all_results = []
  for workdir, plan in zip(workdirs, plans):
    results = runner.run_plan(plan, max_shards=_MAX_SHARDS.value,
                              shards=shards, progress=_PROGRESS.value, log=_log)
    if "pending" in results:
      if jax.process_index() == 0:
        waiting = "; ".join(f"{name}: {', '.join(map(str, ks))}"
                            for name, ks in results["pending"].items())
        print(f"[evaluate] {workdir}: shards {','.join(map(str, shards))} "
              f"written; still missing ({waiting}): the process that "
              "writes the last of them runs the sanity test and writes the "
              "report (this command without --shards does it too)")
      continue
    all_results.append(results)
    if jax.process_index() != 0:
      continue
    for line in tables.summary_lines(results):
      print(line)
    if "report" in results:
      print(f"[evaluate] wrote {results['report']}/ (results.json, tables.md, "
            "per_image.npz, figures/)")
  if len(workdirs) > 1 and all_results and "report" in all_results[0]:
    from dre_jax.evaluation import compare  # pylint: disable=import-outside-toplevel
    out = _COMPARE_DIR.value or os.path.join(os.path.dirname(workdirs[0]),
                                             "comparison")
    for path in compare.write(workdirs, all_results, workdir_lib.resolve(out)):
      print(f"[evaluate] wrote {path}")


def _log(line: str) -> None:
  print(line, flush=True)


def _estimate(plans, shards) -> None:
  """Prints the run time's estimate (of the --shards and --max_shards this
  process computes); a CPU run over CPU_LIMIT_SECONDS without --num_images or
  --yes is a UserError naming both."""
  from dre_jax.evaluation import estimate  # pylint: disable=import-outside-toplevel
  _log("[evaluate] timing a classifier pass for the run-time estimate "
       "(compiling ...)")
  estimates = [estimate.for_plan(p, shards, _MAX_SHARDS.value) for p in plans]
  for plan, est in zip(plans, estimates):
    where = f" ({plan.loaded.workdir})" if len(plans) > 1 else ""
    _log(f"[evaluate] estimate{where}: {est.line()}")
  seconds = sum(e.seconds for e in estimates)
  if (estimates[0].backend == "cpu" and seconds > CPU_LIMIT_SECONDS
      and _NUM_IMAGES.value is None and not _YES.value):
    fits = min(e.images_within(CPU_LIMIT_SECONDS / len(estimates))
               for e in estimates)
    raise cli.UserError(
        f"this run is estimated at {estimate.duration(seconds)} on the CPU; "
        f"evaluate a smaller sample with --num_images (e.g. --num_images={fits} "
        "takes about an hour) or pass --yes to run it anyway")


def run() -> None:
  """The console script: `main` on sys.argv."""
  cli.run(main)


if __name__ == "__main__":
  run()
