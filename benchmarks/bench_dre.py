"""Speed of a DRE explanation against the bare classifier forward pass.

    python benchmarks/bench_dre.py [--arch resnet50] [--image_size 224] [--batch_size 8]
        [--reps 5] [--out results/bench_dre.md]

A DRE explanation (classifier taps + generator + controller + upsampling, one
jitted function) does the classifier's arithmetic plus the generator's. The
target: time(DRE) <= 1.1 x time(classifier forward) x FLOPs(DRE) / FLOPs(classifier),
i.e. DRE runs at no less than ~0.9x the speed its arithmetic predicts from the
bare classifier measured in the same run. The raw speed ratio is reported too.
Random weights: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dre_jax.classifier import Classifier  # noqa: E402
from dre_jax.estimator import DRE  # noqa: E402


def run(arch: str, size: int, batch: int, reps: int) -> dict:
  dre = DRE.create(arch, num_classes=1000)
  cls_vars = Classifier.init(arch, jax.random.key(0), num_classes=1000,
                             image_size=size)
  gen_vars = dre.init_generator(jax.random.key(1), cls_vars, size)
  images = jax.random.uniform(jax.random.key(2), (batch, size, size, 3))

  classify = jax.jit(lambda c, x: c.logits(x))
  explain = jax.jit(dre.explain)
  f_cls = common.flops(classify, cls_vars, images)
  f_dre = common.flops(explain, cls_vars, gen_vars, images)
  t = common.median_seconds({
      "classifier": lambda: classify(cls_vars, images),
      "dre": lambda: explain(cls_vars, gen_vars, images)[0],
  }, reps)
  predicted = t["classifier"] * f_dre / f_cls
  return {
      "arch": arch, "size": size, "batch": batch,
      "classifier_img_s": batch / t["classifier"], "dre_img_s": batch / t["dre"],
      "flops_ratio": f_dre / f_cls, "raw_speed_ratio": t["classifier"] / t["dre"],
      "speed_vs_arithmetic": predicted / t["dre"],
      "target_met": t["dre"] <= 1.1 * predicted,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--arch", default="resnet50")
  common.add_shape_flags(parser, image_size=224, batch_size=8)
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--out", default="results/bench_dre.md")
  args = common.parse(parser)
  rows = [run(a, args.image_size, args.batch_size, args.reps) for a in args.arch.split(",")]
  lines = [
      "# DRE explanation vs bare classifier forward", "",
      f"Command: `{common.command()}`  ", f"Machine: {common.machine()}", "",
      "| arch | size | batch | classifier img/s | DRE img/s | FLOPs(DRE)/FLOPs(cls) "
      "| raw speed ratio | speed vs arithmetic | target (>= 0.91) |",
      "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['arch']} | {r['size']} | {r['batch']} | {r['classifier_img_s']:.2f} | "
        f"{r['dre_img_s']:.2f} | {r['flops_ratio']:.3f} | {r['raw_speed_ratio']:.3f} | "
        f"{r['speed_vs_arithmetic']:.3f} | {'met' if r['target_met'] else 'MISSED'} |")
  lines += ["", "speed vs arithmetic = (time(cls) x FLOPs ratio) / time(DRE); the target "
            "time(DRE) <= 1.1 x predicted is a value >= 1/1.1 = 0.91."]
  text = "\n".join(lines) + "\n"
  print(text)
  common.write_atomic(args.out, text)


if __name__ == "__main__":
  main()
