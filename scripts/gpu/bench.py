r"""GPU benchmarks in one process: chip peak, DRE, stage 2, M_F and the explainers.

    python scripts/gpu/bench.py --out=$OUT/bench.json \
        [--parts=peak,dre,train,metrics,explainers] [--archs=resnet50,efficientnet_lite0]
        [--size=224] [--batches=64,128,256] [--explainer_batch=64]

Made for the lent GPU (issues 10 and 13, `results/gpu.md`); it also runs on a
CPU with small settings (`--archs=tiny_cnn --size=64 --batches=4 --quick`).
Random weights throughout: speed does not depend on their values.

* peak: a 8192^3 matrix product in float32 at the default precision (TF32 on
  the GPU's matrix units), float32 at `precision=HIGHEST` and bfloat16, on
  random normal data (median of 10 after a warm-up). These are the ceilings the
  rows below are compared with (`tf32_peak_ratio`, `bf16_peak_ratio`).
* dre: the classifier's forward and a DRE explanation
  (`DRE.explain`, `benchmarks/bench_dre.py`'s pair), per batch size and compute
  dtype (`--dtypes=float32,bfloat16`). An arch written `efficientnet_lite0@slices`
  (or `@grouped`) forces the form of its depthwise convolutions
  (`models.layers.DepthwiseConv`; plain names take the backend's default).
* train: the classifier's forward + input gradient and the library's stage-2
  training step (`dre_jax.training`: Eq. 9, Adam, masked embeddings), per
  batch size (`benchmarks/bench_train.py`'s pair).
* metrics: M_F's insertion curve (`metrics.insertion_curve`, 32 steps, 4 per
  call, as `evaluate.py`) plus M_E on DRE masks, per batch size and dtype.
* explainers: every registered method (`dre_jax.explainers`) at the paper's
  settings on one batch, compiled once for the batch and once for one image:
  seconds per image batched, the same in a Python loop over single images (the
  issue's ">= 10x on a GPU" target), classifier passes per image
  (`explainers.passes`), time relative to one batched forward + input gradient
  per image, XLA's FLOPs and planned memory (`memory_analysis`).

FLOPs are XLA's cost analysis of each compiled program; achieved TFLOP/s =
FLOPs / median seconds. Timings are medians of repeated calls after a warm-up
call, with the device synchronised (`block_until_ready`). Programs are
compiled ahead of time in a thread pool (XLA compiles outside the GIL), then
timed one at a time. Results go to `--out` (JSON, written after every part) and
a short table is printed last.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import offline  # noqa: E402

RESULTS: dict = {}


def write(path: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(RESULTS, f, indent=1, default=str)
  os.replace(tmp, path)


def log(*a) -> None:
  print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def environment() -> dict:
  env = {"python": sys.version.split()[0], "machine": platform.machine(),
         "cpus": os.cpu_count(), "backend": jax.default_backend(),
         "devices": [d.device_kind for d in jax.devices()],
         "local_device_count": jax.local_device_count(),
         "matmul_precision": str(jax.config.jax_default_matmul_precision)}
  for name in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "numpy",
               "torch", "torchvision", "captum", "ml_collections", "clu", "PIL"):
    if name in ("torchvision", "captum") and "tensorflow" in sys.modules:
      # On the development machine, torchvision imported after TensorFlow
      # crashes the process (triton's LLVM); the GPU image has no TensorFlow.
      env[name] = "not imported (TensorFlow is loaded)"
      continue
    try:
      module = __import__(name, fromlist=["_"])
      env[name] = getattr(module, "__version__", "?")
    except Exception as e:  # pylint: disable=broad-except
      env[name] = f"missing ({type(e).__name__})"
  try:
    env["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm,"
         "power.limit", "--format=csv,noheader"], capture_output=True, text=True,
        timeout=20).stdout.strip()
  except Exception as e:  # pylint: disable=broad-except
    env["nvidia_smi"] = f"unavailable ({e})"
  return env


# ----------------------------------------------------------------------------
# Timing and compilation helpers.

def sync(x):
  return jax.block_until_ready(x)


def median_time(fn, reps: int, warmup: int = 1) -> tuple[float, list[float]]:
  for _ in range(warmup):
    sync(fn())
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    sync(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def cost(compiled) -> dict:
  out = {}
  try:
    c = compiled.cost_analysis()
    c = c[0] if isinstance(c, (list, tuple)) else c
    out["flops"] = float(c.get("flops", float("nan")))
    out["bytes_accessed"] = float(c.get("bytes accessed", float("nan")))
  except Exception as e:  # pylint: disable=broad-except
    out["cost_error"] = repr(e)
  try:
    m = compiled.memory_analysis()
    out["temp_bytes"] = int(m.temp_size_in_bytes)
    out["argument_bytes"] = int(m.argument_size_in_bytes)
    out["output_bytes"] = int(m.output_size_in_bytes)
  except Exception as e:  # pylint: disable=broad-except
    out["memory_error"] = repr(e)
  return out


def compile_all(jobs: dict, threads: int) -> dict:
  """{name: (fn, args)} -> {name: (compiled, seconds) or exception}, lowered here,
  compiled in a thread pool."""
  lowered, out = {}, {}
  for name, (fn, args) in jobs.items():
    t0 = time.perf_counter()
    try:
      lowered[name] = (jax.jit(fn).lower(*args), time.perf_counter() - t0)
    except Exception as e:  # pylint: disable=broad-except
      out[name] = e
      log(f"lowering {name} failed: {type(e).__name__}: {e}")

  def build(item):
    name, (low, t_lower) = item
    t0 = time.perf_counter()
    return name, low.compile(), t_lower + time.perf_counter() - t0

  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    futs = [pool.submit(build, item) for item in lowered.items()]
    for f in concurrent.futures.as_completed(futs):
      try:
        name, compiled, seconds = f.result()
        out[name] = (compiled, seconds)
      except Exception as e:  # pylint: disable=broad-except
        log(f"compile failed: {type(e).__name__}: {str(e)[:300]}")
  for name in lowered:
    out.setdefault(name, RuntimeError("compilation failed"))
  return out


def peak_ratio(flops: float, seconds: float) -> dict:
  achieved = flops / seconds / 1e12
  peak = RESULTS.get("peak", {})
  out = {"tflops": achieved}
  if "float32_default_tflops" in peak:
    out["tf32_peak_ratio"] = achieved / peak["float32_default_tflops"]
  if "bfloat16_tflops" in peak:
    out["bf16_peak_ratio"] = achieved / peak["bfloat16_tflops"]
  return out


# ----------------------------------------------------------------------------
# Parts.

def part_peak(args) -> dict:
  n = args.matmul_size
  out = {"size": n}
  for label, dtype, precision in (("float32_default", jnp.float32, None),
                                  ("float32_highest", jnp.float32, "highest"),
                                  ("bfloat16", jnp.bfloat16, None)):
    ka, kb = jax.random.split(jax.random.key(hash(label) % 1000))
    a = jax.random.normal(ka, (n, n), dtype)
    b = jax.random.normal(kb, (n, n), dtype)
    f = jax.jit(functools.partial(jnp.matmul, precision=precision))
    t, _ = median_time(lambda: f(a, b), reps=10, warmup=2)
    out[f"{label}_tflops"] = 2 * n ** 3 / t / 1e12
    out[f"{label}_seconds"] = t
    log(f"peak {label}: {out[f'{label}_tflops']:.1f} TFLOP/s")
  return out


def _setup(arch: str, size: int, num_classes: int = 1000, dtype=jnp.float32):
  from dre_jax.classifier import Classifier
  from dre_jax.estimator import DRE
  classifier = Classifier.init(arch, jax.random.key(0), num_classes=num_classes,
                               image_size=size, dtype=dtype)
  dre = DRE.create(arch, num_classes=num_classes, dtype=dtype)
  generator = dre.init_generator(jax.random.key(1), classifier, size)
  return classifier, dre, generator


def _images(n: int, size: int):
  return jax.random.uniform(jax.random.key(2), (n, size, size, 3), jnp.float32)


def forward_input_grad(classifier, images):
  """d CE(f(I), argmax f(I)) / d I: one forward + backward to the pixels."""
  import optax

  def loss(x):
    logits = classifier.logits(x)
    t = jax.lax.stop_gradient(jnp.argmax(logits, -1))
    return optax.softmax_cross_entropy_with_integer_labels(logits, t).sum()
  return jax.grad(loss)(images)


def stage2_step(dre, classifier, generator, objective: str = "dre"):
  """(step_fn(state, batch, classifier), state): the library's stage-2 step."""
  import optax
  from dre_jax.perturbation import BackgroundConfig
  try:  # the training package split into steps / optimizers
    from dre_jax.training import optimizers, steps
    from dre_jax import config as config_lib
    config = config_lib.default_config()
    config.dre.objective = objective
    tx, schedule = optimizers.dre_optimizer(config.dre, 100)
    state = steps.TrainState.start(generator["params"], generator["batch_stats"], tx)
    fn = functools.partial(steps.dre_step, dre=dre, schedule=schedule,
                           backgrounds=BackgroundConfig(), config=config, seed=0)
    return fn, state, "dre_jax.training.steps.dre_step"
  except ImportError:
    from dre_jax.training import trainer
    if objective != "dre":
      raise
    schedule = optax.constant_schedule(1e-2)
    tx = trainer._masked(optax.adam(schedule), train_embeddings=False)  # pylint: disable=protected-access
    state = trainer.init_state(generator["params"], generator["batch_stats"], tx)
    fn = functools.partial(trainer.dre_step, dre=dre, tx=tx, schedule=schedule,
                           backgrounds=BackgroundConfig(), seed=0)
    return fn, state, "dre_jax.training.trainer.dre_step"


def _arch_and_depthwise(spec: str) -> tuple[str, str]:
  """"efficientnet_lite0@slices" -> ("efficientnet_lite0", "slices"): an arch,
  optionally with its `DepthwiseConv` form forced (default "auto")."""
  arch, _, impl = spec.partition("@")
  return arch, impl or "auto"


def _with_depthwise(fn, impl: str):
  """fn traced with every `DepthwiseConv` computing in form `impl` (the form is
  chosen at trace time, so the patch only needs to hold while jit traces)."""
  if impl == "auto":
    return fn
  from unittest import mock
  from dre_jax.models import layers

  def traced(*a):
    with mock.patch.object(layers, "depthwise_impl", lambda *_, **__: impl):
      return fn(*a)
  return traced


def part_models(args, which: str) -> list:
  """dre / train / metrics rows for every arch (optionally "arch@slices" or
  "arch@grouped", the depthwise form forced), compute dtype (dre and metrics)
  and batch size; all programs of the part are compiled together."""
  from dre_jax import metrics
  rows = []
  dtypes = args.dtypes if which in ("dre", "metrics") else ["float32"]
  jobs, extra = {}, {}
  for spec, dtype in [(a, d) for a in args.archs for d in dtypes]:
    arch, impl = _arch_and_depthwise(spec)
    classifier, dre, generator = _setup(arch, args.size, dtype=jnp.dtype(dtype))
    for n in args.batches:
      images = _images(n, args.size)
      key = (spec, dtype, n)
      if which == "dre":
        jobs[key + ("classifier_forward",)] = (lambda c, x: c.logits(x), (classifier, images))
        jobs[key + ("dre_explain",)] = (
            lambda c, g, x, dre=dre: dre.explain(c, g, x)[0], (classifier, generator, images))
      elif which == "train":
        fn, state, source = stage2_step(dre, classifier, generator)
        batch = {"image": images, "label": jnp.zeros((n,), jnp.int32)}
        jobs[key + ("forward_input_grad",)] = (forward_input_grad, (classifier, images))
        jobs[key + ("stage2_step",)] = (fn, (state, batch, classifier))
        extra[key + ("stage2_step",)] = {"source": source}
      else:
        masks, target = jax.jit(_with_depthwise(dre.explain, impl))(
            classifier, generator, images)
        boxes = jnp.zeros(images.shape[:3]).at[:, 50:150, 60:160].set(1.0)

        def mf(c, x, m, t, b):
          curve = metrics.insertion_curve(c.probability, x, m, t, num_steps=32,
                                          steps_per_call=4)
          return metrics.faithfulness(curve), metrics.explainability(m, b)
        jobs[key + ("insertion_curve_mf_me",)] = (mf, (classifier, images, masks, target,
                                                       boxes))
  jobs = {k: (_with_depthwise(fn, _arch_and_depthwise(k[0])[1]), a)
          for k, (fn, a) in jobs.items()}
  log(f"{which}: compiling {len(jobs)} programs")
  t0 = time.perf_counter()
  compiled = compile_all(jobs, args.threads)
  log(f"{which}: compiled in {time.perf_counter() - t0:.0f} s")
  for (spec, dtype, n, name), (fn, a) in jobs.items():
    arch, impl = _arch_and_depthwise(spec)
    row = {"part": which, "arch": arch, "depthwise": impl, "size": args.size,
           "batch": n, "program": name, "dtype": dtype}
    row.update(extra.get((spec, dtype, n, name), {}))
    got = compiled[(spec, dtype, n, name)]
    if isinstance(got, Exception):
      row["error"] = f"{type(got).__name__}: {str(got)[:300]}"
      rows.append(row)
      continue
    exe, row["compile_s"] = got
    row.update(cost(exe))
    try:
      t, times = median_time(lambda exe=exe, a=a: exe(*a), reps=args.reps)
    except Exception as e:  # pylint: disable=broad-except
      row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
      rows.append(row)
      continue
    row.update({"seconds": t, "times": times, "images_per_s": n / t})
    if "flops" in row:
      row.update(peak_ratio(row["flops"], t))
      row["gflop_per_image"] = row["flops"] / n / 1e9
    rows.append(row)
    RESULTS[which] = rows
    write(args.out)
    log(f"{which} {spec} {dtype} b{n} {name}: {n / t:.1f} img/s, "
        f"{row.get('tflops', float('nan')):.1f} TFLOP/s")
  return rows


def explainer_settings(name: str, quick: bool, chunk: int) -> dict:
  """`chunk` classifier images per pass; with `quick`, the counts cut to 4
  samples or steps and 3 iterations (`explainers.quick_settings`)."""
  from dre_jax import explainers
  s = explainers.quick_settings(name, samples=4, iterations=3) if quick else {}
  if "batch_size" in explainers.method(name).defaults:
    s["batch_size"] = chunk
  return s


class _Rows(list):
  """A list of result rows that writes RESULTS["explainers"] after every append."""

  def __init__(self, out: str):
    super().__init__()
    self._out = out
    RESULTS["explainers"] = self

  def append(self, row) -> None:
    super().append(row)
    write(self._out)


def part_explainers(args) -> list:
  from dre_jax import explainers
  rows = _Rows(args.out)
  names = [n for n in explainers.names() if n in args.methods or not args.methods]
  for arch in args.archs:
    classifier, dre, generator = _setup(arch, args.size)
    n = args.explainer_batch
    images = _images(n, args.size)
    target = jnp.argmax(jax.jit(lambda c, x: c.logits(x))(classifier, images), -1)
    key = jax.random.key(3)
    jobs = {("forward_input_grad", n): (forward_input_grad, (classifier, images)),
            ("forward_input_grad", 1): (forward_input_grad, (classifier, images[:1]))}
    settings = {}
    # The random generator stands for both kinds (the cost is the same).
    trained = dict(dre=explainers.Generator(dre, generator),
                   mgnet=explainers.Generator(dre, generator))
    for name in names:
      for b in (n, 1):
        s = explainer_settings(name, args.quick, args.chunk if b > 1 else 64)
        settings[(name, b)] = s
        fn = explainers.bind(name, **trained, settings=s)
        jobs[(name, b)] = (fn, (classifier, images[:b], target[:b], key))
    big = args.explainer_big_batch
    if big:
      images_big = _images(big, args.size)
      target_big = jnp.argmax(jax.jit(lambda c, x: c.logits(x))(classifier, images_big), -1)
      jobs[("forward_input_grad", big)] = (forward_input_grad, (classifier, images_big))
      for name in names:
        if (name, n) in jobs and explainers.passes(name, **settings[(name, n)]) < 100:
          settings[(name, big)] = settings[(name, n)]
          fn = explainers.bind(name, **trained, settings=settings[(name, n)])
          jobs[(name, big)] = (fn, (classifier, images_big, target_big, key))
    log(f"explainers {arch}: compiling {len(jobs)} programs")
    t0 = time.perf_counter()
    compiled = compile_all(jobs, args.threads)
    log(f"explainers {arch}: compiled in {time.perf_counter() - t0:.0f} s")
    ref = {}
    for b in (n, 1):
      got = compiled[("forward_input_grad", b)]
      if not isinstance(got, Exception):
        t, _ = median_time(lambda exe=got[0], b=b: exe(classifier, images[:b]),
                           reps=args.reps)
        ref[b] = t / b
    rows.append({"part": "explainers", "arch": arch, "method": "forward_input_grad",
                 "batch": n, "s_per_image_batched": ref.get(n),
                 "s_per_image_loop": ref.get(1)})
    for name in names:
      if (name, n) not in jobs:
        continue
      row = {"part": "explainers", "arch": arch, "size": args.size, "method": name,
             "batch": n, "settings": settings[(name, n)],
             "passes_per_image": explainers.passes(name, **{
                 k: v for k, v in settings[(name, n)].items()})}
      try:
        got = compiled[(name, n)]
        if isinstance(got, Exception):
          raise got
        exe, row["compile_s"] = got
        row.update(cost(exe))
        heavy = row["passes_per_image"] >= 100
        t, times = median_time(
            lambda exe=exe: exe(classifier, images, target, key),
            reps=1 if heavy else args.reps)
        row.update({"seconds_batch": t, "times": times, "s_per_image_batched": t / n})
        if "flops" in row:
          row.update(peak_ratio(row["flops"], t))
        if n in ref:
          row["x_forward_input_grad"] = t / n / ref[n]
          row["x_passes_prediction"] = (t / n) / (row["passes_per_image"] * ref[n])
        got1 = compiled[(name, 1)]
        if isinstance(got1, Exception):
          raise got1
        exe1, row["compile_1_s"] = got1
        k = 2 if heavy else args.loop_images
        sync(exe1(classifier, images[:1], target[:1], key))  # warm-up
        t0 = time.perf_counter()
        for i in range(k):
          sync(exe1(classifier, images[i:i + 1], target[i:i + 1], key))
        loop = (time.perf_counter() - t0) / k
        row.update({"loop_images": k, "s_per_image_loop": loop,
                    "batched_speedup": loop / (t / n)})
        log(f"explainer {arch} {name}: {t / n * 1e3:.2f} ms/img batched, "
            f"{loop * 1e3:.2f} ms/img loop, x{loop / (t / n):.1f}")
      except Exception as e:  # pylint: disable=broad-except
        row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
        log(f"explainer {arch} {name} failed: {row['error']}")
      rows.append(row)
    if big:
      got = compiled.get(("forward_input_grad", big))
      ref_big = None
      if got is not None and not isinstance(got, Exception):
        t, _ = median_time(lambda exe=got[0]: exe(classifier, images_big), reps=args.reps)
        ref_big = t / big
      rows.append({"part": "explainers_big", "arch": arch, "method": "forward_input_grad",
                   "batch": big, "s_per_image_batched": ref_big})
      for name in names:
        if (name, big) not in jobs:
          continue
        row = {"part": "explainers_big", "arch": arch, "method": name, "batch": big,
               "settings": settings[(name, big)],
               "passes_per_image": explainers.passes(name, **settings[(name, big)])}
        try:
          got = compiled[(name, big)]
          if isinstance(got, Exception):
            raise got
          exe, row["compile_s"] = got
          row.update(cost(exe))
          t, times = median_time(lambda exe=exe: exe(classifier, images_big, target_big, key),
                                 reps=args.reps)
          row.update({"seconds_batch": t, "times": times, "s_per_image_batched": t / big})
          if "flops" in row:
            row.update(peak_ratio(row["flops"], t))
          if ref_big:
            row["x_forward_input_grad"] = t / big / ref_big
          log(f"explainer {arch} {name} batch {big}: {t / big * 1e3:.3f} ms/img")
        except Exception as e:  # pylint: disable=broad-except
          row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
          log(f"explainer {arch} {name} batch {big} failed: {row['error']}")
        rows.append(row)
  return rows


def table() -> str:
  lines = []
  p = RESULTS.get("peak", {})
  if p:
    lines.append("peak TFLOP/s: f32 default {:.0f}, f32 highest {:.0f}, bf16 {:.0f}".format(
        p.get("float32_default_tflops", 0), p.get("float32_highest_tflops", 0),
        p.get("bfloat16_tflops", 0)))
  for part in ("dre", "train", "metrics"):
    for r in RESULTS.get(part, []):
      arch = r["arch"] + ("@" + r["depthwise"] if r.get("depthwise", "auto") != "auto" else "")
      lines.append(f"{part:8s} {arch:18s} {r.get('dtype', '')[:4]} b{r['batch']:<4d} {r['program']:22s} "
                   + (f"{r['images_per_s']:9.1f} img/s {r.get('tflops', 0):7.1f} TFLOP/s "
                      f"tf32 {r.get('tf32_peak_ratio', 0):.3f}" if "images_per_s" in r
                      else r.get("error", "?")[:80]))
  for r in RESULTS.get("explainers", []):
    if r.get("part") == "explainers_big":
      lines.append(f"expl big {r['arch']:18s} {r['method']:18s} b{r['batch']} "
                   + (f"{1e3 * r['s_per_image_batched']:.3f} ms/img" if r.get("s_per_image_batched")
                      else r.get("error", "?")[:80]))
      continue
    if r.get("method") == "forward_input_grad":
      lines.append(f"expl     {r['arch']:18s} fwd+grad {1e3 * (r['s_per_image_batched'] or 0):.3f} "
                   f"ms/img batched, {1e3 * (r['s_per_image_loop'] or 0):.3f} ms/img loop")
      continue
    if "s_per_image_loop" in r:
      lines.append(f"expl     {r['arch']:18s} {r['method']:7s} {1e3 * r['s_per_image_batched']:9.3f} ms/img "
                   f"loop {1e3 * r['s_per_image_loop']:9.3f} x{r['batched_speedup']:6.1f} "
                   f"passes {r['passes_per_image']:.0f} xfb {r.get('x_forward_input_grad', 0):.0f} "
                   f"tf32 {r.get('tf32_peak_ratio', 0):.3f}")
    else:
      lines.append(f"expl     {r['arch']:18s} {r['method']:7s} {r.get('error', '?')[:90]}")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--parts", default="peak,dre,train,metrics,explainers")
  parser.add_argument("--archs", default="resnet50,efficientnet_lite0")
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--batches", default="64,128,256")
  parser.add_argument("--dtypes", default="float32",
                      help="compute dtypes of the dre and metrics parts (float32,bfloat16)")
  parser.add_argument("--explainer_batch", type=int, default=64)
  parser.add_argument("--explainer_big_batch", type=int, default=0,
                      help="also time the methods of < 100 passes at this batch")
  parser.add_argument("--chunk", type=int, default=64,
                      help="the explainers' batch_size setting (classifier "
                           "images per pass) for the batched runs")
  parser.add_argument("--methods", default="")
  parser.add_argument("--reps", type=int, default=5)
  parser.add_argument("--loop_images", type=int, default=8)
  parser.add_argument("--matmul_size", type=int, default=8192)
  parser.add_argument("--threads", type=int, default=8)
  parser.add_argument("--quick", action="store_true",
                      help="few iterations/samples (a CPU rehearsal)")
  args = parser.parse_args(argv)
  args.archs = args.archs.split(",")
  args.batches = [int(b) for b in args.batches.split(",")]
  args.methods = [m for m in args.methods.split(",") if m]
  args.dtypes = args.dtypes.split(",")
  if "explainers" in args.parts.split(",") and any("@" in a for a in args.archs):
    parser.error("the explainers part takes plain archs (arch@slices is for "
                 "dre, train and metrics): run it with its own --archs")
  offline.install_shims({})
  RESULTS["command"] = "python " + " ".join(sys.argv)
  RESULTS["environment"] = environment()
  log(json.dumps(RESULTS["environment"]))
  write(args.out)
  for part in args.parts.split(","):
    t0 = time.perf_counter()
    try:
      if part == "peak":
        RESULTS["peak"] = part_peak(args)
      elif part in ("dre", "train", "metrics"):
        RESULTS[part] = part_models(args, part)
      elif part == "explainers":
        RESULTS["explainers"] = part_explainers(args)
      else:
        raise ValueError(f"unknown part {part!r}")
    except Exception:  # pylint: disable=broad-except
      RESULTS.setdefault("errors", {})[part] = traceback.format_exc()[-2000:]
      log(f"part {part} failed:\n{traceback.format_exc()}")
    RESULTS.setdefault("part_seconds", {})[part] = time.perf_counter() - t0
    write(args.out)
  print(table())
  return 0


if __name__ == "__main__":
  sys.exit(main())
