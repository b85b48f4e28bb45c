"""Where Extremal Perturbation's time goes: one iteration against its classifier passes.

    python benchmarks/bench_xpert.py [--arch efficientnet_lite0] [--image_size 224]
        [--images 1] [--iterations 20] [--reps 3] [--random_weights]
        [--out results/bench_xpert.md]

One XPert iteration on --images images runs the classifier forward and
backward on their len(areas) = 4 perturbed copies each (the "passes"; on a GPU
use 16 images, XPert's default of 64 classifier images per pass), and around them the
smooth-max mask of Fong et al. Eq. 7 on the canvas (`smooth_masks`, forward
and backward), the area constraint (Eq. 5) and the perturbation.
This times, per iteration (a `lax.scan` of --iterations, median of --reps
calls after a warm-up, interleaved in one run so the ratios hold on a noisy
machine): XPert itself (`optimize_xpert`); the passes alone (forward + input
gradient of 4 x --images images); XPert with a linear stand-in for the classifier (all
but the passes); `smooth_masks` forward + backward with its custom derivative
and with reverse-mode autodiff of the soft-max as written (what it replaced);
the area term forward + backward, by a sort as Eq. 5 is written and by
selection of the k-th largest value (`area_error`, what XPert runs). ImageNet weights for efficientnet_lite0 (the
`data` extra) unless --random_weights, random weights for the others (the
times do not depend on the weights' values). Writes markdown (with the command and
machine) to --out and JSON next to it, and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

from dre_jax.classifier import Classifier  # noqa: E402
from dre_jax.explainers import mask_optimisation as mo  # noqa: E402

AREAS = (0.025, 0.05, 0.1, 0.2)


class _Linear:
  """A classifier stand-in whose logits are the image's channel sums."""

  def logits(self, x):
    return jnp.sum(x, axis=(1, 2))


def _autodiff_smooth_masks(params, size, step, sigma, coldness=20.0):
  """`smooth_masks` with the soft-max differentiated by JAX as written."""
  def plain(near, weights, coldness):
    v = near[:, :, None, :, None] * weights[:, None]
    soft = jax.nn.softmax(coldness * v, axis=(-2, -1))
    return jnp.sum(v * soft, axis=(-2, -1))
  original = mo._smooth_max  # pylint: disable=protected-access
  mo._smooth_max = plain  # pylint: disable=protected-access
  try:
    return mo.smooth_masks(params, size, step, sigma, coldness)
  finally:
    mo._smooth_max = original  # pylint: disable=protected-access


def _classifier(arch: str, random_weights: bool) -> Classifier:
  if arch == "efficientnet_lite0" and not random_weights:
    from dre_jax.io import torch_weights  # pylint: disable=import-outside-toplevel
    spec, _, variables = torch_weights.load_efficientnet_lite0()
    return Classifier.create(spec, variables)
  return Classifier.init(arch, jax.random.key(0), num_classes=1000)


def _scan(body, iterations):
  return lambda *a: jax.lax.scan(lambda c, i: (c + body(*a, c), None), 0.0,
                                 jnp.arange(iterations))[0]


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--arch", default="efficientnet_lite0")
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--images", type=int, default=1)
  parser.add_argument("--iterations", type=int, default=20)
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--random_weights", action="store_true")
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)
  if args.images < 1:
    parser.error(f"--images must be >= 1, got {args.images}")
  size, iters, images = args.image_size, args.iterations, args.images
  n = len(AREAS) * images  # masks (and classifier images) per iteration
  classifier = _classifier(args.arch, args.random_weights)
  x = jax.random.uniform(jax.random.key(0), (images, size, size, 3))
  t = jnp.ones((images,), jnp.int32)
  step, sigma = mo.xpert_smoothing((size, size))
  cells = mo.xpert_margin(step, sigma)
  canvas = size + 2 * cells * step
  grid = -(-size // step) + 2 * cells
  params = jax.random.uniform(jax.random.key(1), (n, grid, grid))
  flat = jax.random.uniform(jax.random.key(2), (n, canvas * canvas))
  ref = jnp.asarray(mo.area_reference(AREAS * images, canvas * canvas))

  def xpert(clf, x, t):
    return mo.optimize_xpert(clf, x, t, jax.random.key(0), areas=AREAS,
                             iterations=iters)[0]

  def passes(clf, x4, c):
    return jnp.mean(jax.grad(lambda z: jnp.sum(clf.logits(z)[:, 1]))(x4 + c))

  def smooth(fn):
    return lambda p, c: jnp.mean(jax.grad(
        lambda q: jnp.sum(fn(q, (canvas, canvas), step, sigma) ** 2))(p + c))

  def sort(m, c):
    return jnp.mean(jax.grad(lambda q: jnp.sum((jnp.sort(q, axis=1) - ref) ** 2))(m + c))

  def area(m, c):
    return jnp.mean(jax.grad(lambda q: jnp.sum(mo.area_error(q, AREAS * images)))(m + c))

  x4 = jnp.repeat(x, len(AREAS), axis=0)
  programs = {
      "xpert": (jax.jit(xpert), (classifier, x, t)),
      f"passes ({n} images, forward + input gradient)": (
          jax.jit(_scan(passes, iters)), (classifier, x4)),
      "xpert, linear classifier (all but the passes)": (
          jax.jit(lambda x, t: xpert(_Linear(), x, t)), (x, t)),
      "smooth_masks forward + backward (custom derivative)": (
          jax.jit(_scan(smooth(mo.smooth_masks), iters)), (params,)),
      "smooth_masks forward + backward (autodiff)": (
          jax.jit(_scan(smooth(_autodiff_smooth_masks), iters)), (params,)),
      "area term by sort, forward + backward": (jax.jit(_scan(sort, iters)), (flat,)),
      "area term by selection (`area_error`), forward + backward": (
          jax.jit(_scan(area, iters)), (flat,)),
  }
  seconds = common.median_seconds(
      {name: (lambda f=f, a=a: f(*a)) for name, (f, a) in programs.items()},
      args.reps)
  per_iter = {name: s / iters * 1e3 for name, s in seconds.items()}
  passes_ms = per_iter[f"passes ({n} images, forward + input gradient)"]
  lines = [
      "# Extremal Perturbation: one iteration against its classifier passes", "",
      f"Command: `{common.command()}`", "",
      f"Machine: {common.machine()}", "",
      f"{args.arch}, {size} px, {images} image(s), {len(AREAS)} areas each, "
      f"canvas {canvas} px "
      f"(step {step}, sigma {sigma:g}), {iters} iterations per call, median of "
      f"{args.reps} calls after a warm-up, interleaved.", "",
      "| program | ms / iteration | x the passes |", "|---|---|---|"]
  lines += [f"| {name} | {ms:.1f} | {ms / passes_ms:.2f} |"
            for name, ms in per_iter.items()]
  text = "\n".join(lines) + "\n"
  print(text)
  record = {"arch": args.arch, "image_size": size, "images": images,
            "iterations": iters,
            "canvas": canvas, "ms_per_iteration": per_iter,
            "machine": common.machine(), "command": common.command()}
  if args.out:
    out = args.out[:-3] if args.out.endswith(".md") else args.out
    with open(out + ".md", "w") as f:
      f.write(text)
    with open(out + ".json", "w") as f:
      json.dump(record, f, indent=2)
  return record


if __name__ == "__main__":
  main()
