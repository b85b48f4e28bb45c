"""The gradient methods' classifier passes inside a loop on one CPU core: the
convolution form and the chunk size.

    python benchmarks/bench_cpu_loop_chunks.py [--image_size 224] [--samples 16]
        [--rounds 2] [--reps 2] [--sets lax@8,transposed_kernel@4,...]
        [--out results/bench_cpu_loop_chunks]

SmoothGrad (`dre_jax.explainers.gradients`) runs its (sample, image) pairs
through the classifier in chunks of `batch_size` pairs inside one `lax.scan`.
Each set NAME@CHUNK runs ResNet50 (Flax's random initialisation, the weights
compiled in as the library does on a CPU) on 2 images with --samples samples
(2 x samples pairs) in chunks of CHUNK pairs, with the classifiers'
convolutions in the form NAME (`dre_jax.models.layers.conv_impl`: "lax" is
`jax.lax.conv_general_dilated` as it is, "transposed_kernel" the library's CPU
default, whose input gradient reads an explicitly transposed kernel). The set
"torch@B" is torchvision's resnet50 forward + input gradient at batch B, one
thread (no loop: what Captum's SmoothGrad runs per chunk). Every set runs in a
child process pinned to CPU 0, in --rounds interleaved rounds; the table gives
the median over rounds of the median of --reps calls, in ms per pair (per
image for torch). Writes OUT.md and OUT.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import children  # noqa: E402

DEFAULT_SETS = ("lax@8,lax@32,transposed_kernel@4,transposed_kernel@8,"
                "transposed_kernel@16,transposed_kernel@32,torch@8,torch@32")


def _child_jax(impl: str, chunk: int, size: int, samples: int, reps: int) -> dict:
  from unittest import mock

  import jax
  import jax.numpy as jnp
  from dre_jax.classifier import Classifier, jit_for
  from dre_jax.explainers import gradients
  from dre_jax.models import layers

  forced = lambda impl_=None, backend=None: impl  # noqa: E731  (every conv in this form)
  with mock.patch.object(layers, "conv_impl", forced):
    classifier = Classifier.init("resnet50", jax.random.key(0), num_classes=1000,
                                 image_size=size)
    images = jax.random.uniform(jax.random.key(1), (2, size, size, 3))
    target = jnp.array([3, 7])
    fn = jit_for(lambda c, x, t, k: gradients.smooth_grad(
        c, x, t, k, samples=samples, batch_size=chunk), classifier)
    key = jax.random.key(2)
    # The first call (inside the patch) traces and compiles.
    timed = children.time_first_and_reps(
        lambda: fn(classifier, images, target, key), reps, jax.block_until_ready)
  return {**timed, "items": 2 * samples}


def _child_torch(batch: int, size: int, reps: int) -> dict:
  import torch
  model = children.torch_resnet50()
  x = torch.rand(batch, 3, size, size)

  def grad():
    images = x.clone().requires_grad_(True)
    logits = model(images)
    logits.gather(1, logits.argmax(-1, keepdim=True)).sum().backward()
    return images.grad

  return {**children.time_first_and_reps(grad, reps), "items": batch}


def parse_set(name: str) -> tuple[str, int]:
  impl, at, chunk = name.partition("@")
  if not at or impl not in ("lax", "transposed_kernel", "torch") or not chunk.isdigit():
    raise ValueError(f"set {name!r} must read lax@N, transposed_kernel@N or torch@N")
  return impl, int(chunk)


def run_child(name: str, args) -> dict:
  return children.run_child(__file__, [
      f"--child={name}", f"--image_size={args.image_size}",
      f"--samples={args.samples}", f"--reps={args.reps}"])


def markdown(summary: dict, meta: dict) -> str:
  lines = ["# The gradient methods' passes inside a loop on one core: convolution form "
           "and chunk size", "",
           f"Command: `{meta['command']}`", "",
           f"Machine: {meta['machine']}; ResNet50 (random weights), {meta['size']} px, "
           f"SmoothGrad on 2 images x {meta['samples']} samples; each child pinned to "
           f"CPU 0; median of {meta['reps']} calls per child, {meta['rounds']} "
           "interleaved rounds.", "",
           "| set | form | pairs per pass | ms per pair (median over rounds) | per round |",
           "|---|---|---|---|---|"]
  for name, s in summary.items():
    impl, chunk = parse_set(name)
    loop = "a scan" if chunk < 2 * meta["samples"] else "one pass, no loop"
    form = {"lax": f"lax.conv_general_dilated ({loop})",
            "transposed_kernel": f"transposed kernel ({loop})",
            "torch": "torch forward + input gradient, 1 thread"}[impl]
    if "ms" not in s:
      lines.append(f"| {name} | {form} | {chunk} | failed: {s.get('error')} | |")
      continue
    lines.append(f"| {name} | {form} | {chunk} | {s['ms']:.1f} | "
                 f"{', '.join(f'{v:.1f}' for v in s['rounds'])} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--samples", type=int, default=16)
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--reps", type=int, default=2)
  parser.add_argument("--sets", default=DEFAULT_SETS)
  parser.add_argument("--out", default="results/bench_cpu_loop_chunks")
  parser.add_argument("--child", default="", help=argparse.SUPPRESS)
  parser.add_argument("--render", default="", help=argparse.SUPPRESS)  # OUT.json -> OUT.md
  args = parser.parse_args(argv)
  if args.render:
    import common  # noqa: E402
    data = json.load(open(args.render + ".json"))
    common.write_atomic(args.render + ".md", markdown(data["summary"], data))
    return
  if args.child:
    os.sched_setaffinity(0, {0})
    impl, chunk = parse_set(args.child)
    if impl == "torch":
      out = _child_torch(chunk, args.image_size, args.reps)
    else:
      out = _child_jax(impl, chunk, args.image_size, args.samples, args.reps)
    children.report(out)
    return
  import common  # noqa: E402  (the parent only: it imports jax)
  names = [n for n in args.sets.split(",") if n]
  for name in names:
    try:
      parse_set(name)
    except ValueError as e:
      parser.error(str(e))
  summary = children.interleaved_rounds(
      names, args.rounds, lambda name: run_child(name, args),
      lambda name, got: 1e3 * statistics.median(got["times"]) / got["items"], "ms per pair")
  summary = {n: ({"ms": v["median"], "rounds": v["rounds"]} if "median" in v else v)
             for n, v in summary.items()}
  meta = {"command": common.command(), "machine": common.machine(),
          "size": args.image_size, "samples": args.samples, "reps": args.reps,
          "rounds": args.rounds}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
  common.write_atomic(args.out + ".json", json.dumps({**meta, "summary": summary},
                                                     indent=1))
  text = markdown(summary, meta)
  common.write_atomic(args.out + ".md", text)
  print(text)


if __name__ == "__main__":
  main()
