"""The forms of `DepthwiseConv` on EfficientNet-Lite0's depthwise layers and network.

    python benchmarks/bench_depthwise.py [--image_size 224] [--batch_size 8]
        [--reps 5] [--dtype float32] [--out results/bench_depthwise.md]

`dre_jax.models.layers.DepthwiseConv` computes as a sum of shifted slices
("slices", the CPU default: `layers.depthwise_slices`, whose input gradient is
one shifted sum over the padded cotangent) or as XLA's grouped convolution
("grouped", the GPU/TPU default). "slices_autodiff" is the same sum of slices
differentiated as written (its input gradient k * k padded copies of the
cotangent), timed here to show what the custom derivative buys. This times the
forms, on the default backend, on every distinct depthwise layer of
EfficientNet-Lite0 at --image_size (input side, channels, kernel, stride, as
`efficientnet_lite.STAGES` builds them; a layer that occurs several times
counts that often in the totals): "forward" is the layer, "input gradient" the
gradient of a summed loss of its output with respect to the input with the
kernel fixed (what the input-gradient explainers run), "forward+backward" with
respect to both the input and the kernel (training). Then the whole network
(random weights) per image: forward and forward + input gradient. The forms
are timed interleaved in one run (`common.median_seconds`), so their ratios
hold on a noisy machine. Writes markdown (with the command and machine) to
--out and JSON next to it, and prints it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import sys
from unittest import mock

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dre_jax.classifier import Classifier  # noqa: E402
from dre_jax.models import efficientnet_lite  # noqa: E402
from dre_jax.models import layers  # noqa: E402

FORMS = ("slices", "slices_autodiff", "grouped")
PASSES = ("forward", "input gradient", "forward+backward")


def _slices_autodiff(x, w, stride, pad_h, pad_w):
  """`layers.depthwise_slices` without its custom derivative."""
  k = w.shape[0]
  out_h = (x.shape[1] + sum(pad_h) - k) // stride + 1
  out_w = (x.shape[2] + sum(pad_w) - k) // stride + 1
  return layers._shifted_sum(jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0))), w, stride,
                             out_h, out_w)


def _form(form: str):
  """(DepthwiseConv impl, context to trace in) of a form."""
  if form == "slices_autodiff":
    return "slices", mock.patch.object(layers, "depthwise_slices", _slices_autodiff)
  return form, contextlib.nullcontext()


def _compiled(fn, *args):
  """fn compiled for args (traced now, inside the caller's context): a
  zero-argument call."""
  return functools.partial(jax.jit(fn).lower(*args).compile(), *args)


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


def _by_pass(seconds: dict) -> dict[str, dict[str, float]]:
  out = {}
  for (label, form), t in seconds.items():
    out.setdefault(label, {})[form] = t
  return out


def time_layer(side: int, channels: int, kernel: int, stride: int, batch: int,
               reps: int, dtype) -> dict[str, dict[str, float]]:
  """{pass: {form: median seconds}} of one depthwise layer."""
  x = jax.random.normal(jax.random.key(0), (batch, side, side, channels))
  fns = {}
  for form in FORMS:
    impl, context = _form(form)
    module = layers.DepthwiseConv(kernel, stride, dtype, impl=impl)
    variables = module.init(jax.random.key(1), x)

    def loss(v, x, module=module):
      return jnp.sum(jnp.square(module.apply(v, x).astype(jnp.float32)))

    with context:
      fns[("forward", form)] = _compiled(module.apply, variables, x)
      fns[("input gradient", form)] = _compiled(jax.grad(loss, argnums=1), variables, x)
      fns[("forward+backward", form)] = _compiled(jax.grad(loss, argnums=(0, 1)),
                                                  variables, x)
  return _by_pass(common.median_seconds(fns, reps))


def time_network(image_size: int, batch: int, reps: int, dtype
                 ) -> dict[str, dict[str, float]]:
  """{pass: {form: median seconds per image}} of EfficientNet-Lite0 (random
  weights, compiled in): forward, and forward + the input gradient of the
  top class's log-probability."""
  images = jax.random.uniform(jax.random.key(1), (batch, image_size, image_size, 3))
  fns = {}
  for form in FORMS:
    impl, context = _form(form)
    with context, mock.patch.object(layers, "depthwise_impl", lambda *_, **__: impl):
      classifier = Classifier.init("efficientnet_lite0", jax.random.key(0),
                                   image_size=image_size, dtype=dtype)
      score = lambda x, c=classifier: jnp.sum(  # noqa: E731
          jnp.max(jax.nn.log_softmax(c.logits(x)), axis=-1))
      fns[("forward", form)] = _compiled(classifier.logits, images)
      fns[("input gradient", form)] = _compiled(jax.grad(score), images)
  seconds = common.median_seconds(fns, reps)
  return _by_pass({k: t / batch for k, t in seconds.items()})


def to_markdown(rows: list[dict], totals: dict, network: dict, meta: dict) -> str:
  lines = [
      "# DepthwiseConv: shifted slices (with and without their custom derivative) "
      "and XLA's grouped convolution",
      "",
      f"Command: `{meta['command']}`",
      "",
      f"Machine: {meta['machine']}; dtype {meta['dtype']}; batch "
      f"{meta['batch']}; EfficientNet-Lite0's depthwise layers at "
      f"{meta['image_size']} px; median of {meta['reps']} interleaved calls "
      "after a warm-up call each; ms per call.",
      "",
      "| side | channels | k | stride | count | pass | slices | slices_autodiff | grouped "
      "| autodiff / slices | grouped / slices |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for r in rows:
    for label in PASSES:
      t = r[label]
      lines.append(
          f"| {r['side']} | {r['channels']} | {r['kernel']} | {r['stride']} | "
          f"{r['count']} | {label} | "
          + " | ".join(f"{1e3 * t[f]:.2f}" for f in FORMS)
          + f" | {t['slices_autodiff'] / t['slices']:.2f} | "
          f"{t['grouped'] / t['slices']:.2f} |")
  lines.append("")
  layers_count = sum(r["count"] for r in rows)
  for label, t in totals.items():
    lines.append(f"All {layers_count} layers, {label}: "
                 + ", ".join(f"{f} {1e3 * t[f]:.1f} ms" for f in FORMS)
                 + f"; slices_autodiff / slices {t['slices_autodiff'] / t['slices']:.2f}, "
                 f"grouped / slices {t['grouped'] / t['slices']:.2f}.")
  lines += ["", f"The whole network, random weights, ms per image at batch {meta['batch']}:",
            "", "| pass | " + " | ".join(FORMS) + " | autodiff / slices | grouped / slices |",
            "| --- |" + " --- |" * (len(FORMS) + 2)]
  for label, t in network.items():
    lines.append(f"| {label} | " + " | ".join(f"{1e3 * t[f]:.1f}" for f in FORMS)
                 + f" | {t['slices_autodiff'] / t['slices']:.2f} | "
                 f"{t['grouped'] / t['slices']:.2f} |")
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
  totals = {label: dict.fromkeys(FORMS, 0.0) for label in PASSES}
  dtype = jnp.dtype(args.dtype)
  for (side, channels, kernel, stride), count in lite0_layers(
      args.image_size).items():
    t = time_layer(side, channels, kernel, stride, args.batch_size, args.reps, dtype)
    rows.append({"side": side, "channels": channels, "kernel": kernel,
                 "stride": stride, "count": count, **t})
    for label in totals:
      for form in FORMS:
        totals[label][form] += count * t[label][form]
    print(f"{side}x{side}x{channels} k{kernel} s{stride}: " + ", ".join(
        f"{label} " + " / ".join(f"{1e3 * t[label][f]:.2f}" for f in FORMS)
        for label in PASSES) + f" ms ({' / '.join(FORMS)})", flush=True)
  network = time_network(args.image_size, args.batch_size, args.reps, dtype)
  meta = {"command": common.command(), "machine": common.machine(),
          "dtype": args.dtype, "batch": args.batch_size,
          "image_size": args.image_size, "reps": args.reps}
  table = to_markdown(rows, totals, network, meta)
  print(table)
  common.write_atomic(args.out, table)
  common.write_atomic(os.path.splitext(args.out)[0] + ".json", json.dumps(
      {"meta": meta, "rows": rows, "totals": totals, "network": network}, indent=2))


if __name__ == "__main__":
  main()
