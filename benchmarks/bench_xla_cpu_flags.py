"""XLA:CPU flags against torch on one core: ResNet50 forward + input gradient.

    python benchmarks/bench_xla_cpu_flags.py [--batch_size 2] [--image_size 224]
        [--rounds 3] [--reps 3] [--sets default,onednn,...] [--out results/bench_xla_cpu_flags]

The vanilla gradient and Integrated Gradients are forward + input-gradient
passes of the classifier, so their speed against Captum is this pass's speed
against torch's. Each flag set (`FLAG_SETS`: XLA_FLAGS values of the CPU
backend of the installed jaxlib; "after_torch": no flags, torch imported into
the process first) and torch run in a child process pinned to CPU 0
(`os.sched_setaffinity`, torch with one thread), which builds ResNet50 with
random weights, compiles (or warms up) the pass -- the gradient with respect to
the input only, the weights frozen in both -- and reports the median of --reps
timed calls. The children run in --rounds interleaved rounds
(default, set 1, ..., torch, default, ...), so a busy machine slows them alike;
the table gives each set's median over rounds and its ratio to torch (> 1: JAX
is faster). Writes OUT.md and OUT.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import children  # noqa: E402

# name -> XLA_FLAGS (each a flag of this jaxlib's CPU backend).
FLAG_SETS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn_custom_call": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "fast_math": "--xla_cpu_enable_fast_math=true",
    "no_eigen_threads": "--xla_cpu_multi_thread_eigen=false",
    # No flags, but torch and torchvision imported (one thread) before JAX
    # runs, as in benchmarks/bench_explainers.py's single process.
    "after_torch": "",
    # No flags; the classifier's variables passed to the jitted function as
    # arguments (as the explainers take them) instead of closed over as
    # constants, which every other set does.
    "weights_as_arguments": "",
    # No flags; weights as arguments, compiled with `Layout.AUTO` for them
    # (jax.experimental.layout): XLA picks their layout, and they are put
    # into it once (`device_put` to the executable's input formats), so the
    # calls skip the per-call transposes of the default layout.
    "auto_layout": "",
}


def _child_jax(batch: int, size: int, reps: int, weights: str,
               pass_weights: str = "constants") -> dict:
  """pass_weights: "constants" (closed over), "weights_as_arguments" or
  "auto_layout" (arguments in the layout XLA picks; `FLAG_SETS`)."""
  import functools
  import jax
  import jax.numpy as jnp
  import optax
  from dre_jax.classifier import Classifier

  if weights == "torch":  # the torch child's network, ported
    from dre_jax.io import torch_weights
    from dre_jax.models import registry
    state = {k: v.numpy() for k, v in children.torch_resnet50().state_dict().items()}
    classifier = Classifier.create("resnet50", torch_weights.torch_to_flax(
        registry.get("resnet50"), state, 1000))
  else:
    classifier = Classifier.init("resnet50", jax.random.key(0), num_classes=1000,
                                 image_size=size)
  x = jax.random.uniform(jax.random.key(1), (batch, size, size, 3))

  def loss(images, classifier):
    logits = classifier.logits(images)
    t = jax.lax.stop_gradient(jnp.argmax(logits, -1))
    return optax.softmax_cross_entropy_with_integer_labels(logits, t).sum()
  if pass_weights == "auto_layout":  # weights as inputs, in the layout XLA picks
    from jax.experimental.layout import Format, Layout
    formats = jax.tree.map(lambda _: Format(Layout.AUTO), classifier)
    compiled = jax.jit(jax.grad(loss), in_shardings=(None, formats)).lower(
        x, classifier).compile()
    laid_out = jax.device_put(classifier, compiled.input_formats[0][1])
    grad = lambda images: compiled(images, laid_out)  # compiled ahead of the first call
  elif pass_weights == "weights_as_arguments":  # as the library's explainers take it: weights are inputs
    grad = functools.partial(jax.jit(jax.grad(loss)), classifier=classifier)
  else:  # closed over: the weights are constants of the compiled program
    grad = jax.jit(lambda images: jax.grad(loss)(images, classifier))
  return children.time_first_and_reps(lambda: grad(x), reps, jax.block_until_ready)


def _child_torch(batch: int, size: int, reps: int, weights: str) -> dict:
  import torch
  del weights  # torchvision's initialisation, seed 0, always
  model = children.torch_resnet50()  # frozen: the input gradient only, as JAX
  x = torch.rand(batch, 3, size, size)

  def grad():
    images = x.clone().requires_grad_(True)
    logits = model(images)
    t = logits.argmax(-1).detach()
    torch.nn.functional.cross_entropy(logits, t, reduction="sum").backward()
    return images.grad

  return {**children.time_first_and_reps(grad, reps), "torch": torch.__version__}


def child(args) -> None:
  os.sched_setaffinity(0, {0})
  if args.child == "after_torch":
    import torch  # noqa: F401  (loaded first, as the explainer benchmark does)
    import torchvision  # noqa: F401
    torch.set_num_threads(1)
  if args.child == "torch":
    out = _child_torch(args.batch_size, args.image_size, args.reps, args.weights)
  else:
    out = _child_jax(args.batch_size, args.image_size, args.reps, args.weights,
                     pass_weights=args.child)
  children.report(out)


def run_child(name: str, args) -> dict:
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  if name != "torch":
    env["XLA_FLAGS"] = FLAG_SETS[name]
  return children.run_child(__file__, [
      f"--child={name}", f"--batch_size={args.batch_size}",
      f"--image_size={args.image_size}", f"--reps={args.reps}",
      f"--weights={args.weights}"], env)


def markdown(summary: dict, meta: dict) -> str:
  lines = ["# XLA:CPU flags against torch: ResNet50 forward + input gradient on one core", "",
           f"Command: `{meta['command']}`", "",
           f"Machine: {meta['machine']}; batch {meta['batch']}, {meta['size']} px, random "
           f"weights ({meta['weights']}); each child pinned to CPU 0; median of {meta['reps']} calls per child, "
           f"{meta['rounds']} interleaved rounds.", "",
           "| set | XLA_FLAGS | ms/img (median over rounds) | per round | torch / set (> 1: JAX faster) |",
           "|---|---|---|---|---|"]
  torch_ms = summary.get("torch", {}).get("ms_per_image")
  for name, s in summary.items():
    if "ms_per_image" not in s:
      lines.append(f"| {name} | `{FLAG_SETS.get(name, '')}` | failed: {s.get('error')} | | |")
      continue
    ratio = f"{torch_ms / s['ms_per_image']:.2f}" if torch_ms else "-"
    flags = "(torch, 1 thread)" if name == "torch" else f"`{FLAG_SETS[name] or '(none)'}`"
    lines.append(f"| {name} | {flags} | {s['ms_per_image']:.1f} | "
                 f"{', '.join(f'{v:.1f}' for v in s['rounds'])} | {ratio} |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch_size", type=int, default=2)
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--sets", default=",".join(FLAG_SETS))
  parser.add_argument("--weights", default="torch", choices=("torch", "flax"),
                      help="JAX's ResNet50: torchvision's initialisation ported "
                           "(the torch child's network) or Flax's own")
  parser.add_argument("--out", default="results/bench_xla_cpu_flags")
  parser.add_argument("--child", default="", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    child(args)
    return
  import common  # noqa: E402  (the parent only: it imports jax)
  names = [n for n in args.sets.split(",") if n]
  unknown = [n for n in names if n not in FLAG_SETS]
  if unknown:
    parser.error(f"unknown flag sets {unknown}; known: {sorted(FLAG_SETS)}")
  names.append("torch")
  summary = children.interleaved_rounds(
      names, args.rounds, lambda name: run_child(name, args),
      lambda name, got: 1e3 * statistics.median(got["times"]) / args.batch_size, "ms/img")
  summary = {n: ({"ms_per_image": v["median"], "rounds": v["rounds"]} if "median" in v
                 else v) for n, v in summary.items()}
  meta = {"command": common.command(), "machine": common.machine(),
          "batch": args.batch_size, "size": args.image_size, "reps": args.reps,
          "rounds": args.rounds, "weights": args.weights}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
  common.write_atomic(args.out + ".json", json.dumps(
      {**meta, "flag_sets": FLAG_SETS, "summary": summary}, indent=1))
  text = markdown(summary, meta)
  common.write_atomic(args.out + ".md", text)
  print(text)


if __name__ == "__main__":
  main()
