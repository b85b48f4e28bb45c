r"""Training steps with the batch in microbatches against the whole batch, in one run.

    python benchmarks/bench_microbatches.py --arch=resnet18 --image_size=96 \
        --batch_size=64 --microbatches=4

Times, alternating on the same random batch, the jitted steps of
`dre_jax.training.steps` with `microbatches=1` and `microbatches=K`
(`config.microbatches`): the classifier's training step (cross-entropy,
gradients of every weight, training-mode BatchNorm) and the stage-2 step
(Eq. 9 into the generator). Both compute the same update up to per-slice
BatchNorm statistics, so the ratio is the speed-up of cutting the batch.
Appends rows to results/bench_microbatches.md.
"""

import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dre_jax import config as config_lib
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.perturbation import BackgroundConfig
from dre_jax.training import optimizers
from dre_jax.training import steps
from dre_jax.training.steps import TrainState

HEADER = ("# Microbatched training steps vs the whole batch\n\n"
          "`python benchmarks/bench_microbatches.py --arch=A --image_size=S "
          "--batch_size=B --microbatches=K` (median of alternating steps after "
          "compilation, one run).\n\n"
          "| step | arch | size | batch | K | img/s whole batch | img/s K "
          "slices | speed-up | device | command |\n|---|---|---|---|---|---|---|"
          "---|---|---|\n")


def main(argv=None):
  parser = common.training_parser(__doc__, arch="resnet18", image_size=96,
                                  batch_size=64, steps=3,
                                  out="bench_microbatches.md")
  parser.add_argument("--microbatches", type=int, default=4)
  args = common.parse(parser, argv)
  size, n, k = args.image_size, args.batch_size, args.microbatches
  if k < 1 or n % k:
    parser.error(f"--microbatches={k} must be >= 1 and divide --batch_size={n}")

  classifier = Classifier.init(args.arch, jax.random.key(0), num_classes=14,
                               image_size=size)
  rng = np.random.RandomState(0)
  batch = {"image": jnp.asarray(rng.rand(n, size, size, 3), jnp.float32),
           "label": jnp.asarray(rng.randint(0, 14, n), jnp.int32)}
  schedule = optax.constant_schedule(1e-3)

  cls_state = TrainState.start(classifier.variables["params"],
                               classifier.variables.get("batch_stats", {}),
                               optax.adam(schedule))
  dre = DRE.create(args.arch, num_classes=14)
  generator = dre.init_generator(jax.random.key(1), classifier, size)
  dre_state = TrainState.start(
      generator["params"], generator["batch_stats"],
      optimizers.masked(optax.adam(schedule), train_embeddings=False))

  def jitted(step, slices, **kw):
    return jax.jit(functools.partial(step, schedule=schedule, seed=0,
                                     microbatches=slices, **kw))

  rows = []
  for name, step, state, frozen, kw in (
      ("classifier", steps.classifier_step, cls_state, None,
       dict(module=classifier.module, spec=classifier.spec)),
      ("stage 2", steps.dre_step, dre_state, classifier,
       dict(dre=dre, backgrounds=BackgroundConfig(),
            config=config_lib.default_config()))):
    whole, sliced = jitted(step, 1, **kw), jitted(step, k, **kw)
    times = common.median_seconds({
        "whole": lambda f=whole, s=state, c=frozen: f(s, batch, c),
        "sliced": lambda f=sliced, s=state, c=frozen: f(s, batch, c)}, args.steps)
    rows.append(f"| {name} | {args.arch} | {size} | {n} | {k} | "
                f"{n / times['whole']:.3g} | {n / times['sliced']:.3g} | "
                f"{times['whole'] / times['sliced']:.2f} | {common.machine()} | "
                f"`{common.command()}` |")
    print(rows[-1])
  text = open(args.out).read() if os.path.exists(args.out) else HEADER
  common.write_atomic(args.out, text + "\n".join(rows) + "\n")


if __name__ == "__main__":
  main()
