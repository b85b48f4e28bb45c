"""Images/s of the classifier ports: forward, and forward + gradient w.r.t. x.

    python benchmarks/bench_models.py [--models resnet50,vgg19,googlenet]
        [--batch_size 8] [--image_size 224] [--reps 5] [--dtype float32]
        [--out results/bench_models.md]

Each model gets random weights (speed does not depend on them) and runs under
`jax.jit` on the default backend. "forward" is `module.apply(v, x)`;
"forward+grad" is the gradient of the summed cross-entropy of the logits
against fixed labels with respect to the input images, the pass DRE's
training backpropagates through the frozen classifier. The first call of each
(compilation and warm-up) is excluded; the table gives the median of `--reps`
timed calls, and the FLOPs XLA counts for one call, so the time can be judged
against arithmetic. Writes the table as markdown (with the command and
machine) to `--out` and as JSON next to it, and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dre_jax import models  # noqa: E402


def bench_model(name: str, batch: int, size: int, reps: int, dtype) -> dict:
  """Times one registered classifier; returns one row of the table."""
  spec = models.get(name)
  module = spec.build(num_classes=1000, dtype=dtype)
  key_init, key_x = jax.random.split(jax.random.key(0))
  x = jax.random.normal(key_x, (batch, size, size, 3), jnp.float32)
  labels = jnp.arange(batch) % 1000
  variables = jax.jit(lambda k, x: module.init(k, x, train=False))(key_init, x)

  forward = jax.jit(lambda v, x: module.apply(v, x, train=False)[0])

  def loss(x, v):
    logits = module.apply(v, x, train=False)[0]
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum()

  input_grad = jax.jit(jax.grad(loss))
  row = {"model": name, "batch": batch, "size": size}
  for label, fn, args in (("forward", forward, (variables, x)),
                          ("forward+grad", input_grad, (x, variables))):
    first, times = common.time_calls(fn, *args, reps=reps)
    median = statistics.median(times)
    flops = common.flops(fn, *args)
    row[label] = {
        "images_per_s": batch / median,
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "first_call_s": first,
        "gflop_per_image": flops / batch / 1e9,
        "gflop_per_s": flops / median / 1e9,
    }
  return row


def to_markdown(rows: list[dict], meta: dict) -> str:
  lines = [
      "# Classifier ports: throughput",
      "",
      f"Command: `{meta['command']}`",
      "",
      f"Machine: {meta['machine']}; JAX {meta['jax']} on {meta['backend']} "
      f"({meta['devices']}); dtype {meta['dtype']}; {meta['date']}.",
      "",
      f"Median of {meta['reps']} timed calls after one warm-up call "
      "(compilation) per function; min-max in brackets. GFLOP/img is XLA's "
      "count for the compiled call divided by the batch.",
      "",
      "| model | batch | size | pass | images/s | median s [min-max] "
      "| GFLOP/img | GFLOP/s |",
      "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for row in rows:
    for label in ("forward", "forward+grad"):
      r = row[label]
      lines.append(
          f"| {row['model']} | {row['batch']} | {row['size']} | {label} | "
          f"{r['images_per_s']:.2f} | {r['median_s']:.3f} "
          f"[{r['min_s']:.3f}-{r['max_s']:.3f}] | {r['gflop_per_image']:.2f} "
          f"| {r['gflop_per_s']:.1f} |")
  if meta.get("note"):
    lines += ["", meta["note"]]
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="resnet50,vgg19,googlenet,efficientnet_lite0",
                      help="comma-separated registered names")
  common.add_shape_flags(parser, image_size=224, batch_size=8)
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"))
  parser.add_argument("--out", default="results/bench_models.md")
  parser.add_argument("--note", default="",
                      help="free text appended to the table, e.g. load")
  args = common.parse(parser, argv)
  if args.reps < 1 or args.batch_size < 1:
    parser.error("--reps and --batch_size must be at least 1")

  dtype = jnp.dtype(args.dtype)
  rows = []
  for name in args.models.split(","):
    rows.append(bench_model(name, args.batch_size, args.image_size, args.reps, dtype))
    print(f"{name}: forward {rows[-1]['forward']['images_per_s']:.2f} img/s, "
          f"forward+grad {rows[-1]['forward+grad']['images_per_s']:.2f} "
          "img/s", flush=True)
  argv = sys.argv[1:] if argv is None else argv
  meta = {
      "command": shlex.join(["python", "benchmarks/bench_models.py", *argv]),
      "machine": f"{platform.processor() or platform.machine()}, "
                 f"{os.cpu_count()} CPU cores visible",
      "jax": jax.__version__,
      "backend": jax.default_backend(),
      "devices": ", ".join(sorted({d.device_kind for d in jax.devices()})),
      "dtype": args.dtype,
      "reps": args.reps,
      "date": time.strftime("%Y-%m-%d %H:%M %Z"),
      "note": args.note,
  }
  table = to_markdown(rows, meta)
  print(table)
  common.write_atomic(args.out, table)
  common.write_atomic(os.path.splitext(args.out)[0] + ".json",
                      json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
  main()
