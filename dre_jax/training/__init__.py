"""Training DRE (Sec. 4.1): stages, data parallelism, checkpoints, configs.

* `trainer`: `train_and_evaluate(config, workdir)`, the classifier, stage-1 and
  stage-2 steps and the loop they share.
* `config`: the default config (paper values) and its validation.
* `parallel`: the device mesh, global batches, `jax.distributed` start-up.
* `input`: this process's training batches from `dre_jax.data.pipelines`.
* `checkpoints`: the workdir layout, per-stage orbax checkpoints,
  `load_estimator(workdir)` for what training produced.
"""

from dre_jax.training.checkpoints import load_estimator
from dre_jax.training.config import default_config
from dre_jax.training.config import validate
from dre_jax.training.trainer import train_and_evaluate
