"""Benchmarks that time each setting in its own child process, pinned to one core,
in interleaved rounds (`bench_xla_cpu_flags.py`, `bench_cpu_loop_chunks.py`).

A child prints one line `RESULT {json}` with "first_call_s" and "times"
(`time_first_and_reps`); the parent runs the settings round by round
(`interleaved_rounds`), so a busy machine slows them alike, and summarises each
by the median over rounds. Imports neither JAX nor torch: the children choose.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable


def time_first_and_reps(call: Callable[[], object], reps: int,
                        wait: Callable[[object], object] = lambda out: out) -> dict:
  """{"first_call_s", "times"}: seconds of the first call(), then of `reps`
  more; wait(output) blocks until the output is computed (e.g.
  `jax.block_until_ready`)."""
  start = time.perf_counter()
  wait(call())
  first = time.perf_counter() - start
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    wait(call())
    times.append(time.perf_counter() - start)
  return {"first_call_s": first, "times": times}


def report(result: dict) -> None:
  """The child's answer to `run_child`."""
  print("RESULT " + json.dumps(result), flush=True)


def run_child(script: str, args: list[str], env: dict | None = None) -> dict:
  """Runs `python script *args` and returns the dict it `report`ed, or
  {"error": [last line of its output]}."""
  proc = subprocess.run([sys.executable, os.path.abspath(script), *args],
                        env=env, capture_output=True, text=True)
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}


def interleaved_rounds(names: list[str], rounds: int, run: Callable[[str], dict],
                       per_item: Callable[[str, dict], float], unit: str
                       ) -> dict[str, dict]:
  """{name: {"median", "rounds"} or {"error"}}: run(name) for every name in
  each of `rounds` rounds; per_item(name, result) turns a child's result into
  the figure (e.g. ms per image), the median over rounds summarising it."""
  per_round = {n: [] for n in names}
  errors = {}
  for r in range(rounds):
    for name in names:
      got = run(name)
      if "error" in got:
        errors[name] = got["error"]
        print(f"round {r + 1} {name}: failed {got['error']}", flush=True)
        continue
      value = per_item(name, got)
      per_round[name].append(value)
      print(f"round {r + 1} {name}: {value:.1f} {unit} (first call "
            f"{got['first_call_s']:.1f} s)", flush=True)
  return {n: ({"median": statistics.median(v), "rounds": v} if v else
              {"error": errors.get(n)}) for n, v in per_round.items()}


def torch_resnet50():
  """torchvision's resnet50, seed-0 initialisation, eval mode, weights frozen;
  torch on one thread."""
  import torch
  import torchvision
  torch.set_num_threads(1)
  torch.manual_seed(0)
  return torchvision.models.resnet50().eval().requires_grad_(False)
