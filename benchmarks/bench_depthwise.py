"""The two forms of `DepthwiseConv` on EfficientNet-Lite0's depthwise layers.

    python benchmarks/bench_depthwise.py [--image_size 224] [--batch_size 8]
        [--reps 5] [--dtype float32] [--out results/bench_depthwise.md]

`dre_jax.models.layers.DepthwiseConv` computes as a sum of shifted slices
("slices", the CPU default) or as XLA's grouped convolution ("grouped", the
GPU/TPU default). This times both, on the default backend, on every distinct
depthwise layer of EfficientNet-Lite0 at --image_size (input side, channels,
kernel, stride, as `efficientnet_lite.STAGES` builds them; a layer that occurs
several times counts that often in the totals): "forward" is the layer,
"forward+backward" the gradient of a summed loss of its output with respect to
both the input and the kernel (what training and the input-gradient methods
run). Each pair of forms is timed interleaved in one run
(`common.median_seconds`), so the ratio slices / grouped (> 1: the grouped
convolution is faster) holds on a noisy machine. Writes markdown (with the
command and machine) to --out and JSON next to it, and prints it.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dre_jax.models import efficientnet_lite  # noqa: E402
from dre_jax.models import layers  # noqa: E402

IMPLS = ("slices", "grouped")


def lite0_layers(image_size: int) -> collections.Counter:
  """{(input side, channels, kernel, stride): count} of Lite0's depthwise layers."""
  side = -(-image_size // 2)  # after the stride-2 stem
  channels = efficientnet_lite.STEM_WIDTH
  found = collections.Counter()
  for repeats, kernel, stride, expand, width in efficientnet_lite.STAGES:
    for repeat in range(repeats):
      s = stride if repeat == 0 else 1
      found[(side, channels * expand, kernel, s)] += 1
      side, channels = -(-side // s), width
  return found


def time_layer(side: int, channels: int, kernel: int, stride: int, batch: int,
               reps: int, dtype) -> dict[str, dict[str, float]]:
  """{pass: {form: median seconds}} of one depthwise layer."""
  x = jax.random.normal(jax.random.key(0), (batch, side, side, channels))
  fns = {}
  for impl in IMPLS:
    module = layers.DepthwiseConv(kernel, stride, dtype, impl=impl)
    variables = module.init(jax.random.key(1), x)
    forward = jax.jit(module.apply)

    def loss(v, x, module=module):
      return jnp.sum(jnp.square(module.apply(v, x).astype(jnp.float32)))

    backward = jax.jit(jax.grad(loss, argnums=(0, 1)))
    fns[("forward", impl)] = functools.partial(forward, variables, x)
    fns[("forward+backward", impl)] = functools.partial(backward, variables, x)
  seconds = common.median_seconds(fns, reps)
  out = {}
  for (label, impl), t in seconds.items():
    out.setdefault(label, {})[impl] = t
  return out


def to_markdown(rows: list[dict], totals: dict, meta: dict) -> str:
  lines = [
      "# DepthwiseConv: shifted slices against XLA's grouped convolution",
      "",
      f"Command: `{meta['command']}`",
      "",
      f"Machine: {meta['machine']}; dtype {meta['dtype']}; batch "
      f"{meta['batch']}; EfficientNet-Lite0's depthwise layers at "
      f"{meta['image_size']} px; median of {meta['reps']} interleaved calls "
      "after a warm-up call each.",
      "",
      "| side | channels | k | stride | count | pass | slices ms | grouped ms "
      "| slices / grouped |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for r in rows:
    for label in ("forward", "forward+backward"):
      t = r[label]
      lines.append(
          f"| {r['side']} | {r['channels']} | {r['kernel']} | {r['stride']} | "
          f"{r['count']} | {label} | {1e3 * t['slices']:.2f} | "
          f"{1e3 * t['grouped']:.2f} | {t['slices'] / t['grouped']:.2f} |")
  lines.append("")
  for label, t in totals.items():
    lines.append(f"All {sum(r['count'] for r in rows)} layers, {label}: slices "
                 f"{1e3 * t['slices']:.1f} ms, grouped {1e3 * t['grouped']:.1f} "
                 f"ms, slices / grouped {t['slices'] / t['grouped']:.2f}.")
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  common.add_shape_flags(parser, image_size=224, batch_size=8)
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"))
  parser.add_argument("--out", default="results/bench_depthwise.md")
  args = common.parse(parser, argv)
  if args.reps < 1 or args.batch_size < 1:
    parser.error("--reps and --batch_size must be at least 1")

  rows = []
  totals = {label: dict.fromkeys(IMPLS, 0.0)
            for label in ("forward", "forward+backward")}
  for (side, channels, kernel, stride), count in lite0_layers(
      args.image_size).items():
    t = time_layer(side, channels, kernel, stride, args.batch_size, args.reps,
                   jnp.dtype(args.dtype))
    rows.append({"side": side, "channels": channels, "kernel": kernel,
                 "stride": stride, "count": count, **t})
    for label in totals:
      for impl in IMPLS:
        totals[label][impl] += count * t[label][impl]
    print(f"{side}x{side}x{channels} k{kernel} s{stride}: forward slices / "
          f"grouped {t['forward']['slices'] / t['forward']['grouped']:.2f}, "
          "forward+backward "
          f"{t['forward+backward']['slices'] / t['forward+backward']['grouped']:.2f}",
          flush=True)
  meta = {"command": common.command(), "machine": common.machine(),
          "dtype": args.dtype, "batch": args.batch_size,
          "image_size": args.image_size, "reps": args.reps}
  table = to_markdown(rows, totals, meta)
  print(table)
  common.write_atomic(args.out, table)
  common.write_atomic(os.path.splitext(args.out)[0] + ".json", json.dumps(
      {"meta": meta, "rows": rows, "totals": totals}, indent=2))


if __name__ == "__main__":
  main()
