r"""FLOPs per image of the GPU runs' programs, counted by XLA on the CPU backend.

    python scripts/gpu/flops.py --out=results/gpu/flops.json [--archs=resnet50,efficientnet_lite0]

On the GPU, XLA's cost analysis leaves out the convolutions (they are cuDNN
custom calls): a ResNet50 forward counts 0.05 GFLOP there instead of 8. The
ratios to the chip's peak in results/gpu.md therefore use these counts of the
same jitted programs compiled for the CPU (batch 2, per image), times the
images/s measured on the GPU. Programs: the classifier's forward, forward +
input gradient (the explainers' unit pass), a DRE explanation, the stage-1 step
(Eq. 4) and the stage-2 steps (Eq. 9 and MGnet's Eq. 2) of `dre_jax.training`,
and the one-pass explainers. Methods built on `lax.scan`/`lax.map` loops are
left out (cost analysis counts a loop body once): their FLOPs are estimated as
passes x forward + input gradient.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import offline  # noqa: E402


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--archs", default="resnet50,efficientnet_lite0")
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--batch", type=int, default=2)
  args = parser.parse_args(argv)
  offline.install_shims({})
  from dre_jax import explainers
  from dre_jax import config as config_lib
  from dre_jax.training import optimizers, steps
  out = {"command": "python " + " ".join(sys.argv), "backend": jax.default_backend(),
         "jax": jax.__version__, "batch": args.batch, "gflop_per_image": {}}
  n = args.batch
  for arch in args.archs.split(","):
    classifier, dre, generator = bench._setup(arch, args.size)  # pylint: disable=protected-access
    images = bench._images(n, args.size)  # pylint: disable=protected-access
    target = jnp.zeros((n,), jnp.int32)
    batch = {"image": images, "label": target}
    programs = {
        "classifier_forward": (lambda c, x: c.logits(x), (classifier, images)),
        "forward_input_grad": (bench.forward_input_grad, (classifier, images)),
        "dre_explain": (lambda c, g, x: dre.explain(c, g, x)[0],
                        (classifier, generator, images)),
    }
    for objective in ("dre", "mgnet"):
      fn, state, _ = bench.stage2_step(dre, classifier, generator, objective)
      programs[f"stage2_step_{objective}"] = (fn, (state, batch, classifier))
    config = config_lib.default_config()
    tx, schedule = optimizers.embeddings_optimizer(config.embeddings)
    state1 = steps.TrainState.start(generator["params"], generator["batch_stats"], tx)
    programs["stage1_step"] = (functools.partial(
        steps.embeddings_step, dre=dre, schedule=schedule, fake_prob=0.5, seed=0),
        (state1, batch, classifier))
    trained = explainers.Generator(dre, generator)  # both kinds: same cost
    for name in explainers.names():  # the one-pass explainers
      if explainers.passes(name) > 1:
        continue
      programs[f"explainer_{name}"] = (
          explainers.bind(name, dre=trained, mgnet=trained),
          (classifier, images, target, None))
    counts = {}
    for name, (fn, a) in programs.items():
      c = jax.jit(fn).lower(*a).compile().cost_analysis()
      c = c[0] if isinstance(c, (list, tuple)) else c
      counts[name] = float(c["flops"]) / n / 1e9
      print(f"{arch} {name}: {counts[name]:.3f} GFLOP/img", flush=True)
    out["gflop_per_image"][arch] = counts
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
      json.dump(out, f, indent=1)
    os.replace(args.out + ".tmp", args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
