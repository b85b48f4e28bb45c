"""The explainers against one forward + backward pass, and against Captum, in one run.

    python benchmarks/bench_explainers.py --arch resnet50,efficientnet_lite0 \
        --image_size 224 --batch_size 2 --reps 2 --samples 10 --iterations 10 \
        --out results/bench_explainers

For each classifier and each registered method (settings: the papers' defaults,
except the counts below): seconds per image of the whole jitted batch, the
method's classifier passes per image (`explainers.passes`), and that time over
passes x the per-image time of one forward + backward pass (input gradient of
the target logit) of the same model measured in the same run ("vs passes";
the issue's target is <= 1.2; "best" divides by the fastest forward + backward
of the run, "interleaved" by the one timed alternately with the method). The
counts of the expensive methods are cut (`explainers.quick_settings`) to
`--samples` (SmoothGrad samples, IG steps) and `--iterations` (MPert, XPert,
FInv) so a CPU run takes minutes; their "s/img (full)" column scales the
measured time by full passes / measured passes. "XLA memory" is the compiled
program's temporary + argument + output bytes (`memory_analysis`);
`--memory_batch=64` also compiles each method at batch 64 (not run) for its plan.

With torch, torchvision and captum installed, Captum's Saliency, NoiseTunnel
SmoothGrad, IntegratedGradients and LayerGradCam run on torchvision's resnet50
with the same (random, frozen) weights, batch, sample counts and targets, at most
`--captum_batch_size` images per pass (default: the JAX gradient methods' chunk,
`gradients.default_batch_size`: 8 on a CPU, where torch's pass at 224 px is also
faster per image at 8 than at 32, though at 96 px faster at 43,
`benchmarks/bench_cpu_loop_chunks.py`; 64 on a GPU); each Captum call alternates
with the JAX call it is compared with, so both see the same load.

`--loop=vgrad,gcam,...` also times a Python loop over one-image calls (JAX and
Captum) of those methods: what batching gains (on a GPU the issue expects >=
10x). On a GPU, Captum runs on it too (each call timed to
`torch.cuda.synchronize()`).

Imports only the core package (classifier, models, explainers; no TensorFlow,
no ml_collections), so it runs on a GPU machine without them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

try:  # before anything that may load TensorFlow (see tests/conftest.py)
  import torch
  import torchvision
except ImportError:
  torch = torchvision = None

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from dre_jax import explainers  # noqa: E402
from dre_jax.explainers import captum as captum_lib  # noqa: E402
from dre_jax.explainers import gradients  # noqa: E402
from dre_jax.classifier import Classifier  # noqa: E402
from dre_jax.estimator import DRE  # noqa: E402
from dre_jax.models import registry  # noqa: E402

# The paper's ten methods (those with its Tables 3-4 means), in Table 2's order.
METHODS = [m for m in explainers.names() if explainers.method(m).paper]
METHODS.sort(key=lambda m: explainers.method(m).table2.row)


def torch_resnet50(num_classes: int = 1000):
  torch.manual_seed(0)
  return torchvision.models.resnet50(weights=None, num_classes=num_classes).eval()


def build_classifier(arch: str):
  """(Classifier, torch model or None): resnet50 ported from torchvision's random
  weights (so Captum sees the same network), EfficientNet-Lite0 with its real weights."""
  if arch == "resnet50" and torch is not None:
    from dre_jax.io import torch_weights
    model = torch_resnet50()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    return Classifier.create("resnet50", torch_weights.torch_to_flax(
        registry.get("resnet50"), state, 1000)), model
  if arch == "efficientnet_lite0":
    try:
      from dre_jax.io import torch_weights
      spec, _, variables = torch_weights.load_efficientnet_lite0()
      return Classifier.create(spec, variables), None
    except (ImportError, FileNotFoundError):
      pass
  return Classifier.init(arch, jax.random.key(0), num_classes=1000), None


def explainer_fn(name: str, classifier: Classifier, size: int, settings: dict):
  """The jitted method; a trained one on a random generator (its cost is the same)."""
  generator = None
  if explainers.method(name).needs:
    dre = DRE.create(classifier.spec, classifier.num_classes)
    generator = explainers.Generator(
        dre, dre.init_generator(jax.random.key(1), classifier, size))
  return jax.jit(explainers.bind(name, dre=generator, mgnet=generator,
                                 settings=settings))


def memory_gib(compiled) -> float:
  m = compiled.memory_analysis()
  if m is None:
    return float("nan")
  total = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
           - getattr(m, "alias_size_in_bytes", 0))
  return total / 2 ** 30


def captum_fns(model, images: np.ndarray, target: np.ndarray, samples: int,
               mean, std, batch_size: int = 64) -> dict:
  """Zero-argument calls of the methods' Captum counterparts
  (`dre_jax.explainers.captum`) on the same images (NCHW) and targets, at most
  ~batch_size images per pass (as the JAX explainers' default batch_size)."""
  m = torch.tensor(mean).view(1, 3, 1, 1)
  s = torch.tensor(std).view(1, 3, 1, 1)

  class Normalised(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.net = model

    def forward(self, x):
      return self.net((x - m) / s)

  device = "cuda" if torch.cuda.is_available() else "cpu"
  net = Normalised().eval().to(device)
  for p in net.parameters():  # frozen, as the JAX classifier: no weight gradients
    p.requires_grad_(False)
  m, s = m.to(device), s.to(device)
  x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(device)
  t = torch.from_numpy(target.astype(np.int64)).to(device)

  def synced(fn):  # a GPU call is timed to its end
    if device == "cpu":
      return fn
    return lambda: (fn(), torch.cuda.synchronize())

  def call(counterpart):
    return lambda: counterpart.attribute(net, x, t, layer=net.net.layer4,
                                         samples=samples, batch_size=batch_size)

  return {name: synced(call(c)) for name, c in captum_lib.COUNTERPARTS.items()}


def bench_arch(arch: str, args) -> dict:
  classifier, torch_model = build_classifier(arch)
  key = jax.random.key(0)
  images = jax.random.uniform(key, (args.batch_size, args.image_size, args.image_size, 3))
  target = jnp.argmax(jax.jit(lambda c, x: c.logits(x))(classifier, images), axis=-1)

  def fb(c, x, t):  # one forward + backward: the unit "pass"
    return jax.grad(lambda x: jnp.sum(
        jnp.take_along_axis(c.logits(x), t[:, None], axis=1)))(x)

  fb = jax.jit(fb)
  forward = jax.jit(lambda c, x: c.logits(x))
  fb_call = lambda: fb(classifier, images, target)
  base = common.median_seconds({
      "fb": fb_call, "forward": lambda: forward(classifier, images)}, args.reps + 1)
  fb_times = [base["fb"] / args.batch_size]
  rows = []
  run_captum = (not args.no_captum and torch_model is not None)
  if run_captum:
    try:
      import captum  # noqa: F401
    except ImportError:
      run_captum = False
  # Captum's images per pass: the JAX gradient methods' default chunk on this
  # backend (`gradients.default_batch_size`) unless --captum_batch_size is given.
  captum_batch = args.captum_batch_size or gradients.default_batch_size(images.shape)
  captum = (captum_fns(torch_model, np.asarray(images), np.asarray(target),
                       args.samples, classifier.mean, classifier.std,
                       batch_size=captum_batch)
            if run_captum else {})
  for name in args.methods:
    settings = explainers.quick_settings(name, args.samples, args.iterations)
    fn = explainer_fn(name, classifier, args.image_size, settings)
    compile_start = time.perf_counter()
    compiled = fn.lower(classifier, images, target, key).compile()
    compile_s = time.perf_counter() - compile_start
    call = functools.partial(compiled, classifier, images, target, key)
    fns = {"jax": call, "fb": fb_call}  # the unit pass, interleaved with the method
    if args.constants:  # the same method with the classifier closed over
      closed = jax.jit(functools.partial(fn, classifier)).lower(
          images, target, key).compile()
      fns["jax_constants"] = functools.partial(closed, images, target, key)
    if name in captum:
      fns["captum"] = captum[name]
    seconds = common.median_seconds(fns, args.reps)
    fb_times.append(seconds["fb"] / args.batch_size)
    passes = explainers.passes(name, **settings)
    full = explainers.passes(name)
    per_img = seconds["jax"] / args.batch_size
    row = {"method": name, "settings": settings, "s_per_img": per_img,
           "s_per_img_full": per_img * full / passes, "passes": passes,
           "passes_full": full, "fb_s_per_img": seconds["fb"] / args.batch_size,
           "vs_passes_here": per_img / (passes * seconds["fb"] / args.batch_size),
           "compile_s": compile_s, "xla_memory_gib": memory_gib(compiled)}
    if args.memory_batch:  # compiled only, never run: XLA's plan at that batch
      shapes = (jax.ShapeDtypeStruct((args.memory_batch, args.image_size, args.image_size, 3),
                                     jnp.float32),
                jax.ShapeDtypeStruct((args.memory_batch,), jnp.int32))
      row["memory_batch"] = args.memory_batch
      row["xla_memory_gib_at_memory_batch"] = memory_gib(
          fn.lower(classifier, *shapes, key).compile())
    if "jax_constants" in seconds:
      row["constants_s_per_img"] = seconds["jax_constants"] / args.batch_size
    if "captum" in seconds:
      row["captum"] = captum_lib.COUNTERPARTS[name].display
      row["captum_s_per_img"] = seconds["captum"] / args.batch_size
      row["speedup_vs_captum"] = seconds["captum"] / seconds["jax"]
      if "jax_constants" in seconds:
        row["constants_speedup_vs_captum"] = seconds["captum"] / seconds["jax_constants"]
    if name in args.loop:
      one = [functools.partial(fn, classifier, images[i:i + 1], target[i:i + 1], key)
             for i in range(args.batch_size)]
      loops = {"jax_loop": lambda: [f() for f in one]}
      if name in captum:
        single = captum_fns(torch_model, np.asarray(images[:1]),
                            np.asarray(target[:1]), args.samples,
                            classifier.mean, classifier.std)[name]
        loops["captum_loop"] = lambda: [single() for _ in range(args.batch_size)]
      loop_s = common.median_seconds(loops, args.reps)
      row["loop_s_per_img"] = loop_s["jax_loop"] / args.batch_size
      row["batched_vs_loop"] = loop_s["jax_loop"] / seconds["jax"]
      if "captum_loop" in loop_s:
        row["captum_loop_s_per_img"] = loop_s["captum_loop"] / args.batch_size
    rows.append(row)
    print(json.dumps({"arch": arch, **row}), flush=True)
  best = min(fb_times)  # the unit: the best forward + backward of the run
  for row in rows:
    row["vs_passes"] = row["s_per_img"] / (row["passes"] * best)
  return {"arch": arch, "fb_s_per_img": best,
          "forward_s_per_img": base["forward"] / args.batch_size, "rows": rows,
          "captum_batch_size": captum_batch if run_captum else None}


def markdown(results: list[dict], args) -> str:
  out = [f"# Explainers: time per image against one forward + backward pass and Captum\n",
         f"Command: `{common.command()}`\n", f"Machine: {common.machine()}",
         f"torch {getattr(torch, '__version__', '-')}, batch {args.batch_size}, "
         f"{args.image_size} px, median of {args.reps} calls after a warm-up call; "
         f"counts cut to {args.samples} samples/steps and {args.iterations} "
         f"iterations, `s/img (full)` scaled to the papers' counts.\n"]
  for r in results:
    out.append(f"## {r['arch']}: best forward + backward {r['fb_s_per_img'] * 1e3:.1f} "
               f"ms/img, forward {r['forward_s_per_img'] * 1e3:.1f} ms/img"
               + (f"; Captum at most {r['captum_batch_size']} images per pass, the JAX "
                  "gradient methods' default chunk" if r.get("captum_batch_size") else "")
               + "\n")
    out.append("| method | passes/img (run / full) | s/img | s/img (full) | vs passes "
               "(best / interleaved) | XLA memory GiB | Captum | Captum s/img | "
               "JAX speedup |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    constants = [row for row in r["rows"] if "constants_s_per_img" in row]
    for row in r["rows"]:
      cap = (f"{row['captum']} | {row['captum_s_per_img']:.3f} | "
             f"{row['speedup_vs_captum']:.2f}x" if "captum" in row else "- | - | -")
      out.append(
          f"| {row['method']} | {row['passes']:.3g} / {row['passes_full']:.3g} | "
          f"{row['s_per_img']:.3f} | {row['s_per_img_full']:.2f} | "
          f"{row['vs_passes']:.2f} / {row['vs_passes_here']:.2f} | "
          f"{row['xla_memory_gib']:.2f} | {cap} |")
    if constants:
      out.append("\nThe classifier's variables closed over as constants of the program "
                 "(`jax.jit(functools.partial(fn, classifier))`) instead of passed as "
                 "arguments, s/img and JAX speedup over Captum: " + "; ".join(
                     f"{row['method']} {row['constants_s_per_img']:.3f}"
                     + (f" ({row['constants_speedup_vs_captum']:.2f}x)"
                        if "constants_speedup_vs_captum" in row else "")
                     for row in constants))
    mem = [row for row in r["rows"] if "xla_memory_gib_at_memory_batch" in row]
    if mem:
      out.append(f"\nXLA memory (GiB) of the program compiled at batch "
                 f"{mem[0]['memory_batch']}: " + ", ".join(
                     f"{row['method']} {row['xla_memory_gib_at_memory_batch']:.2f}"
                     for row in mem))
    loops = [row for row in r["rows"] if "loop_s_per_img" in row]
    if loops:
      out.append("\nOne-image loop against the batch (s/img): " + "; ".join(
          f"{row['method']} {row['loop_s_per_img']:.4f} vs {row['s_per_img']:.4f} "
          f"({row['batched_vs_loop']:.1f}x)"
          + (f", Captum loop {row['captum_loop_s_per_img']:.4f}"
             if "captum_loop_s_per_img" in row else "") for row in loops))
    out.append("")
  return "\n".join(out) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--arch", default="resnet50,efficientnet_lite0")
  parser.add_argument("--methods", default=",".join(METHODS))
  common.add_shape_flags(parser, image_size=224, batch_size=2)
  parser.add_argument("--reps", type=int, default=2)
  parser.add_argument("--samples", type=int, default=10,
                      help="SmoothGrad samples and IG steps actually run")
  parser.add_argument("--iterations", type=int, default=10,
                      help="MPert/XPert/FInv iterations actually run")
  parser.add_argument("--memory_batch", type=int, default=0,
                      help="also compile (not run) each method at this batch and "
                           "report XLA's planned memory")
  parser.add_argument("--loop", default="",
                      help="methods also timed as a loop of one-image calls, "
                           "e.g. vgrad,gcam,dre")
  parser.add_argument("--no_captum", action="store_true")
  parser.add_argument("--captum_batch_size", type=int, default=0,
                      help="images per Captum pass (default: the JAX gradient "
                           "methods' default chunk, gradients.default_batch_size)")
  parser.add_argument("--constants", action="store_true",
                      help="also time each method with the classifier closed over "
                           "(its variables constants of the compiled program)")
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--out", default="results/bench_explainers",
                      help="writes OUT.md and OUT.json")
  args = common.parse(parser, argv)
  args.methods = args.methods.split(",")
  args.loop = [m for m in args.loop.split(",") if m]
  unknown = sorted(set(args.methods) - set(explainers.names()))
  if unknown:
    parser.error(f"unknown methods {unknown}; registered: {explainers.names()}")
  if torch is not None:
    torch.set_num_threads(args.threads)
  results = [bench_arch(a, args) for a in args.arch.split(",")]
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  common.write_atomic(args.out + ".json", json.dumps(
      {"command": common.command(), "machine": common.machine(),
       "args": vars(args), "results": results}, indent=1))
  common.write_atomic(args.out + ".md", markdown(results, args))
  print(markdown(results, args))


if __name__ == "__main__":
  main()
