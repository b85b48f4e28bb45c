"""Shared timing, FLOP counting and result writing for the benchmarks.

Speed on a shared, noisy machine is judged as ratios measured in one run, and
against arithmetic: XLA's own FLOP count of each jitted computation.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time

import jax

from dre_jax import atomic
from dre_jax import cli


def flops(jitted, *args) -> float:
  """FLOPs that XLA's cost analysis counts for one call of `jitted(*args)`."""
  cost = jitted.lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))


def time_calls(fn, *args, reps: int) -> tuple[float, list[float]]:
  """(seconds of the first call, seconds of each of `reps` later calls)."""
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return first, times


def median_seconds(fns: dict, reps: int) -> dict:
  """Median seconds per call of each zero-argument fn, calls interleaved.

  The first call of each (compilation, warm-up) is excluded. Interleaving the
  functions round by round spreads the machine's noise evenly over them.
  """
  for fn in fns.values():
    jax.block_until_ready(fn())
  times = {name: [] for name in fns}
  for _ in range(reps):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - start)
  return {name: statistics.median(t) for name, t in times.items()}


def add_shape_flags(parser: argparse.ArgumentParser, *, image_size: int,
                    batch_size: int) -> None:
  """--image_size (the side of the square images) and --batch_size, named as
  in the command-line tools."""
  parser.add_argument("--image_size", type=int, default=image_size,
                      help="side of the square images, px")
  parser.add_argument("--batch_size", type=int, default=batch_size,
                      help="images per call")


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None
          ) -> argparse.Namespace:
  """parser's arguments from argv (default sys.argv[1:]); flag names take
  dashes or underscores, as in the command-line tools (`dre_jax.cli.flag_names`)."""
  return parser.parse_args(cli.flag_names(sys.argv[1:] if argv is None else argv))


def training_parser(doc: str, *, arch: str, image_size: int, batch_size: int,
                    steps: int, out: str) -> argparse.ArgumentParser:
  """The flags of the training-step benchmarks: --arch, --image_size,
  --batch_size, --steps and --out (default results/<out>)."""
  parser = argparse.ArgumentParser(description=doc.split("\n")[0])
  parser.add_argument("--arch", default=arch)
  add_shape_flags(parser, image_size=image_size, batch_size=batch_size)
  parser.add_argument("--steps", type=int, default=steps)
  parser.add_argument("--out", default=os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results", out))
  return parser


def machine() -> str:
  return (f"{platform.node()}: {os.cpu_count()} CPUs, "
          f"{jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"jax {jax.__version__}")


def command() -> str:
  return "python " + " ".join(shlex.quote(a) for a in sys.argv)


write_atomic = atomic.write_atomic
