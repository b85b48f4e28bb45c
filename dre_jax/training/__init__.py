"""Training DRE (Sec. 4.1): stages, data parallelism, checkpoints.

* `trainer`: `train_and_evaluate(config, workdir)`, the classifier, stage-1 and
  stage-2 steps and the loop they share.
* `input`: this process's training batches from `dre_jax.data.pipelines`.
* `checkpoints`: the per-stage resumable orbax checkpoints.

Data parallelism (the device mesh, global batches, `jax.distributed`
start-up) is `dre_jax.parallel`, shared with the evaluation. The config is
`dre_jax.config`; what training writes is read back by
`dre_jax.io` (`load_estimator(workdir)`), which imports nothing from here.
"""

from dre_jax import extras

extras.require("training", *extras.TRAIN_MODULES)

# pylint: disable=wrong-import-position
from dre_jax.training.trainer import train_and_evaluate
