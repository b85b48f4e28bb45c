r"""Trains DRE for one config: `python train.py --config=configs/cub_resnet.py --workdir=...`.

Stages (each skipped when its final checkpoint exists, resumed otherwise):
classifier fine-tuning where the config asks for it, stage 1 (class
embeddings, Eq. 4), stage 2 (the generator, Eq. 9). Any config field can be
overridden: `--config.dre.epochs=3`; `--config=configs/x.py:runlocal` shrinks a
config for a quick local run.

Multi-host: run the same command in every process. TPU pods, SLURM jobs and
Open MPI jobs are detected; elsewhere pass --coordinator_address,
--num_processes and --process_id (e.g. two CPU processes on one machine).
"""

import logging as python_logging

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dre_jax import cli

from dre_jax import config as config_lib
from dre_jax import parallel
from dre_jax.io import workdir as workdir_lib
from dre_jax.training import trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, the trained estimator and "
    "TensorBoard logs; a second run with the same workdir resumes.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "host:port of process 0 (multi-process runs "
    "outside TPU pods/SLURM).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0,
                                      "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's index.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries:
  """Drops the INFO lines of orbax (dozens per checkpoint); warnings stay."""

  def filter(self, record) -> bool:
    return record.levelno >= python_logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_logger().addFilter(_QuietLibraries())
  config_lib.validate(_CONFIG.value)  # before any work
  parallel.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                      _PROCESS_ID.value)
  summary = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  logging.info("summary: %s", summary)
  print(f"trained estimator: {_WORKDIR.value}/{workdir_lib.ESTIMATOR_DIR} "
        f"(load with dre_jax.io.load_estimator); TensorBoard: "
        f"tensorboard --logdir={_WORKDIR.value}")


if __name__ == "__main__":
  cli.run(main)
