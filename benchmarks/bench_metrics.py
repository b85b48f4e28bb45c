"""Cost of the faithfulness metric M_F and the evaluation's memory bound.

    python benchmarks/bench_metrics.py speed [--arch efficientnet_lite0,resnet50]
        [--image_size 224] [--batch_size 8] [--reps 5]
    python benchmarks/bench_metrics.py memory [--images 100,2000]
    (each writes results/bench_metrics_<what>.md unless --out is given)

speed: M_F of Eq. 10 (`metrics.insertion_curve` with the tie-breaker, m = 32:
ranking, the blurred base image, 33 perturbed images per image, the
classifier) against the bare forward pass of the classifier on the same
number of images, measured in the same run (interleaved medians). Target:
time(M_F) <= 1.1 x 33 x time(forward) per image.

memory: `protocol.run` over N images of the composites' train split (the
real TFDS pipeline, at 64 px, tiny_cnn with random weights, `--methods`,
default dre and vgrad), each N in a fresh process; peak resident memory (ru_maxrss). The run
holds one shard at a time, so the peak must not grow with N (target: 100 and
2,000 images within 10%).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dre_jax import metrics  # noqa: E402
from dre_jax.classifier import Classifier  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def speed(arch: str, size: int, batch: int, reps: int, steps_per_call: int) -> dict:
  clf = Classifier.init(arch, jax.random.key(0), num_classes=1000, image_size=size)
  images = jax.random.uniform(jax.random.key(1), (batch, size, size, 3))
  masks = jax.random.uniform(jax.random.key(2), (batch, size, size))
  target = jnp.zeros(batch, jnp.int32)
  # The forward at the batch the metric's calls use (steps_per_call ratios of
  # the batch at once), so both run the classifier on the same shapes.
  wide = jnp.concatenate([images] * steps_per_call)
  wide_target = jnp.concatenate([target] * steps_per_call)
  forward = jax.jit(lambda c, x, t: c.probability(x, t))
  mf = jax.jit(lambda c, x, m, t: metrics.faithfulness(metrics.insertion_curve(
      c.probability, x, m, t, num_steps=32, steps_per_call=steps_per_call)))
  t = common.median_seconds({
      "forward": lambda: forward(clf, wide, wide_target),
      "mf": lambda: mf(clf, images, masks, target),
  }, reps)
  forward_per_image = t["forward"] / (batch * steps_per_call)
  mf_per_image = t["mf"] / batch
  ratio = mf_per_image / (33 * forward_per_image)
  return {"arch": arch, "size": size, "batch": batch,
          "steps_per_call": steps_per_call,
          "forward_img_s": 1 / forward_per_image, "mf_s_per_image": mf_per_image,
          "ratio": ratio, "target_met": ratio <= 1.1}


MEMORY_SCRIPT = r"""
import json, resource, sys
import jax
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax import explainers
from dre_jax.evaluation import cache, data, protocol
n, cache_dir, data_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
name, split, size = "tuxpaint_composites/coarse_224", "train", 64
clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=14, image_size=size)
dre = DRE.create("tiny_cnn", 14)
gen = dre.init_generator(jax.random.key(1), clf, size)
trained = explainers.Generator(dre, gen)  # for the methods that need one
methods = [protocol.EvalMethod(k, explainers.bind(k, dre=trained, mgnet=trained))
           for k in sys.argv[4].split(",")]
sample = protocol.make_sample(data.split_size(name, split, data_dir), n, seed=0)
source = data.tfds_source(name, split, image_size=size, data_dir=data_dir)
p = protocol.Protocol(batch_size=16, shard_size=128)
dirs = protocol.run(clf, methods, sample, source, cache_dir, p, progress=False)
per_method, _ = cache.collect(dirs, [m.name for m in methods], sample, p)
print("RESULT", json.dumps({
    "images": len(per_method["dre"]["faithfulness"]),
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def memory(num_images: int, data_dir: str, methods: str) -> dict:
  with tempfile.TemporaryDirectory() as cache:
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(num_images), cache, data_dir,
         methods],
        env=env, cwd=REPO, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(result.stderr[-3000:])
  line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][0]
  return json.loads(line[7:])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("what", choices=["speed", "memory"])
  parser.add_argument("--arch", default="efficientnet_lite0,resnet50")
  common.add_shape_flags(parser, image_size=224, batch_size=8)
  parser.add_argument("--steps_per_call", type=int, default=4)
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--images", default="100,2000")
  parser.add_argument("--methods", default="dre,vgrad",
                      help="memory: the explainers evaluated (registry names)")
  parser.add_argument("--data_dir", default=os.environ.get(
      "TFDS_DATA_DIR", os.path.join(REPO, "outputs", "tensorflow_datasets")))
  parser.add_argument("--out", default=None,
                      help="default results/bench_metrics_<what>.md")
  args = common.parse(parser)
  lines = [f"Command: `{common.command()}`  ", f"Machine: {common.machine()}", ""]
  if args.what == "speed":
    rows = [speed(a, args.image_size, args.batch_size, args.reps, args.steps_per_call)
            for a in args.arch.split(",")]
    lines += ["| arch | size | batch | forward img/s | M_F s/image | "
              "M_F / (33 forwards) | target (<= 1.1) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['arch']} | {r['size']} | {r['batch']} | {r['forward_img_s']:.2f} "
              f"| {r['mf_s_per_image']:.3f} | {r['ratio']:.3f} | "
              f"{'met' if r['target_met'] else 'missed'} |" for r in rows]
    title = "# M_F against 33 bare classifier forwards"
  else:
    rows = [memory(int(n), args.data_dir, args.methods)
            for n in args.images.split(",")]
    lines += ["| images | peak RSS (MiB) |", "|---|---|"]
    lines += [f"| {r['images']} | {r['peak_rss_mib']:.0f} |" for r in rows]
    spread = max(r["peak_rss_mib"] for r in rows) / min(r["peak_rss_mib"] for r in rows)
    lines += ["", f"largest / smallest peak: {spread:.3f} (target <= 1.10: "
              f"{'met' if spread <= 1.10 else 'missed'})"]
    title = "# Evaluation memory against the number of images"
  text = "\n".join([title, "", *lines, ""])
  print(text)
  common.write_atomic(args.out or os.path.join(
      REPO, "results", f"bench_metrics_{args.what}.md"), text)


if __name__ == "__main__":
  main()
