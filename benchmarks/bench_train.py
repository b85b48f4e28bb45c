r"""Stage-2 training speed against the bare classifier, in one run.

    python benchmarks/bench_train.py --arch=resnet50 --image_size=112 --batch_size=8

Times two jitted steps on the same random images, alternating:
  * classifier: forward + gradient with respect to the input images (what any
    explainer that back-propagates to the pixels pays), CE against argmax;
  * stage 2: `dre_jax.training.steps.dre_step` (Eq. 9: clean forward,
    generator, backgrounds, perturbed forward, backward into the generator,
    Adam update).
XLA's cost analysis counts the FLOPs of both compiled steps. The issue's target:
time(stage 2) <= 1.1 x time(classifier) x FLOPs(stage 2) / FLOPs(classifier),
i.e. stage 2 runs at no less than 0.9x the speed its arithmetic predicts. The
raw ratio of speeds (stage-2 images/s over classifier images/s) is reported
too. Appends a row to results/bench_train.md.
"""

import functools
import os
import platform
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.perturbation import BackgroundConfig
from dre_jax import config as config_lib
from dre_jax.training import optimizers
from dre_jax.training import steps
from dre_jax.training.steps import TrainState


def main(argv=None):
  parser = common.training_parser(__doc__, arch="resnet50", image_size=112,
                                  batch_size=8, steps=5, out="bench_train.md")
  args = common.parse(parser, argv)

  dre = DRE.create(args.arch, num_classes=1000)
  size, n = args.image_size, args.batch_size
  classifier = Classifier.init(args.arch, jax.random.key(0), num_classes=1000,
                               image_size=size)
  generator = dre.init_generator(jax.random.key(1), classifier, size)
  images = jnp.asarray(np.random.RandomState(0).rand(n, size, size, 3),
                       jnp.float32)
  batch = {"image": images, "label": jnp.zeros((n,), jnp.int32)}

  def classifier_step(clf, images):
    """Forward + input gradient: d CE(f(I), argmax f(I)) / d I."""
    def loss(x):
      logits = clf.logits(x)
      t = jax.lax.stop_gradient(jnp.argmax(logits, -1))
      return optax.softmax_cross_entropy_with_integer_labels(logits, t).sum()
    return jax.grad(loss)(images)

  schedule = optax.constant_schedule(1e-2)
  tx = optimizers.masked(optax.adam(schedule), train_embeddings=False)
  state = TrainState.start(generator["params"], generator["batch_stats"], tx)
  stage2 = functools.partial(steps.dre_step, dre=dre, schedule=schedule,
                             backgrounds=BackgroundConfig(),
                             config=config_lib.default_config(), seed=0)
  cls_fn, dre_fn = jax.jit(classifier_step), jax.jit(stage2)
  flops_cls = common.flops(cls_fn, classifier, images)
  flops_dre = common.flops(dre_fn, state, batch, classifier)
  times = common.median_seconds({  # alternating: both see the same load
      "cls": lambda: cls_fn(classifier, images),
      "dre": lambda: dre_fn(state, batch, classifier)}, args.steps)
  t_cls, t_dre = times["cls"], times["dre"]
  predicted = 1.1 * t_cls * flops_dre / flops_cls
  row = {
      "arch": args.arch, "size": size, "batch": n,
      "cls img/s": n / t_cls, "stage-2 img/s": n / t_dre,
      "speed ratio": t_cls / t_dre,
      "GFLOP cls": flops_cls / 1e9, "GFLOP stage 2": flops_dre / 1e9,
      "FLOP ratio": flops_dre / flops_cls,
      "t stage 2 (s)": t_dre, "1.1 x predicted (s)": predicted,
      "target met": "yes" if t_dre <= predicted else "no",
  }
  line = "| " + " | ".join(
      f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |"
  print("\n".join(f"{k}: {v}" for k, v in row.items()))
  if os.path.exists(args.out):
    with open(args.out) as f:
      text = f.read()
  else:
    text = ("# Stage-2 training speed vs the classifier's forward + input "
            "gradient\n\n`python benchmarks/bench_train.py --arch=A "
            "--image_size=S --batch_size=B` (median of alternating steps "
            "after compilation; FLOPs from XLA's cost analysis). Target: "
            "t(stage 2) <= 1.1 x t(cls) x FLOPs(stage 2) / FLOPs(cls).\n\n"
            "| " + " | ".join(row) + " | device | command |\n"
            "|" + "---|" * (len(row) + 2) + "\n")
  text += (line[:-1] + f"| {jax.devices()[0].device_kind} "
           f"({os.cpu_count()} cores, {platform.machine()}) | "
           f"`python benchmarks/bench_train.py {' '.join(sys.argv[1:])}` |\n")
  common.write_atomic(args.out, text)

if __name__ == "__main__":
  main()
