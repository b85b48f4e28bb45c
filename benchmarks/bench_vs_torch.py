"""The Flax ports against PyTorch/torchvision on the same machine, in one run.

    python benchmarks/bench_vs_torch.py [--models resnet50,vgg19,googlenet]
        [--image_size 224] [--batch_size 8] [--reps 5] [--out results/bench_vs_torch.md]

Needs the `parity` extra (torch 2.14.1, torchvision 0.29.1). For each model:
images/s of the forward pass and of forward + gradient with respect to the
input (the pass that DRE's training and gradient explainers pay), JAX jitted
(XLA) against torchvision in eval mode with `torch.set_num_threads(cpu count)`;
the two frameworks' calls alternate round by round so both see the same load.
Random weights: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch  # before anything that may load TensorFlow
import torchvision

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dre_jax import models  # noqa: E402


def _jax_fns(name: str, x: np.ndarray):
  module = models.get(name).build(num_classes=1000)
  variables = jax.jit(lambda k, x: module.init(k, x, train=False))(
      jax.random.key(0), x)
  labels = jnp.arange(x.shape[0]) % 1000
  forward = jax.jit(lambda v, x: module.apply(v, x, train=False)[0])

  def loss(x, v):
    logits = module.apply(v, x, train=False)[0]
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum()

  grad = jax.jit(jax.grad(loss))
  xj = jnp.asarray(x)
  return (lambda: forward(variables, xj)), (lambda: grad(xj, variables))


def _torch_fns(name: str, x: np.ndarray):
  model = getattr(torchvision.models, name)(weights=None).eval()
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  labels = torch.arange(x.shape[0]) % 1000

  def forward():
    with torch.no_grad():
      return model(xt)

  def grad():
    xg = xt.clone().requires_grad_(True)
    out = model(xg)
    torch.nn.functional.cross_entropy(out, labels, reduction="sum").backward()
    return xg.grad

  return forward, grad


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="resnet50,vgg19,googlenet")
  common.add_shape_flags(parser, image_size=224, batch_size=8)
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--out", default="results/bench_vs_torch.md")
  args = common.parse(parser)
  torch.set_num_threads(os.cpu_count())
  x = np.random.default_rng(0).standard_normal(
      (args.batch_size, args.image_size, args.image_size, 3)).astype(np.float32)
  lines = ["# Flax ports vs PyTorch/torchvision, same machine, one run", "",
           f"Command: `{common.command()}`  ",
           f"Machine: {common.machine()}; torch {torch.__version__} "
           f"({torch.get_num_threads()} threads), torchvision {torchvision.__version__}",
           "", f"Batch {args.batch_size}, {args.image_size} px, median of {args.reps} alternating calls "
           "after a warm-up call.", "",
           "| model | pass | JAX img/s | PyTorch img/s | JAX / PyTorch |",
           "|---|---|---|---|---|"]
  for name in args.models.split(","):
    jf, jg = _jax_fns(name, x)
    tf_, tg = _torch_fns(name, x)
    t = common.median_seconds({"jax forward": jf, "torch forward": tf_,
                         "jax grad": jg, "torch grad": tg}, args.reps)
    for label, key in (("forward", "forward"), ("forward + input grad", "grad")):
      j, p = args.batch_size / t[f"jax {key}"], args.batch_size / t[f"torch {key}"]
      lines.append(f"| {name} | {label} | {j:.2f} | {p:.2f} | {j / p:.2f}x |")
    print(lines[-2], lines[-1], sep="\n", flush=True)
  text = "\n".join(lines) + "\n"
  print(text)
  common.write_atomic(args.out, text)


if __name__ == "__main__":
  main()
