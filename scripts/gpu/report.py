r"""Markdown tables of the GPU runs' raw files (for results/gpu.md).

    python scripts/gpu/report.py --dir=results/gpu

Reads what the device runs wrote (tests_{default,highest}.xml, bench_*.json,
bench_models*.log, reference.json) and `flops.json` (`scripts/gpu/flops.py`)
from `--dir` and prints the tables; the prose of results/gpu.md is written by
hand around them. FLOP rates come from flops.json (XLA's count on the CPU
backend): the GPU backend's cost analysis leaves out cuDNN convolutions, so the
`tflops` fields that bench.py stores from it are far too low and not shown.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import xml.etree.ElementTree as ET


def tests(directory: str) -> str:
  outcome = {}
  for p in ("default", "highest"):
    path = os.path.join(directory, f"tests_{p}.xml")
    if not os.path.exists(path):
      continue
    for case in ET.parse(path).getroot().iter("testcase"):
      name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
      state = "passed"
      for child in case:
        if child.tag in ("failure", "error", "skipped"):
          state = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[child.tag]
          if child.tag != "skipped":
            state += ": " + (child.get("message") or "")[:140].replace("\n", " ").replace("|", "/")
          else:
            state += ": " + (child.get("message") or "")[:100].replace("|", "/")
      outcome.setdefault(name, {})[p] = (state, float(case.get("time") or 0))
  if not outcome:
    return ""
  counts = {p: {} for p in ("default", "highest")}
  for r in outcome.values():
    for p, (s, _) in r.items():
      key = s.split(":")[0]
      counts[p][key] = counts[p].get(key, 0) + 1
  lines = ["| precision | " + " | ".join(sorted({k for c in counts.values() for k in c})) + " |"]
  keys = sorted({k for c in counts.values() for k in c})
  lines.append("|---|" + "---|" * len(keys))
  for p, c in counts.items():
    lines.append(f"| {p} | " + " | ".join(str(c.get(k, 0)) for k in keys) + " |")
  lines += ["", "Tests whose outcome is not 'passed' at some precision:", "",
            "| test | default | highest |", "|---|---|---|"]
  for name, r in sorted(outcome.items()):
    d, h = r.get("default", ("-", 0))[0], r.get("highest", ("-", 0))[0]
    if d != "passed" or h != "passed":
      lines.append(f"| {name} | {d} | {h} |")
  return "\n".join(lines)


def bench(path: str) -> str:
  with open(path) as f:
    r = json.load(f)
  lines = [f"`{r.get('command')}`", ""]
  p = r.get("peak")
  if p:
    lines += ["| matmul 8192^3 | TFLOP/s |", "|---|---|"]
    for k in ("float32_default", "float32_highest", "bfloat16"):
      lines.append(f"| {k} | {p[k + '_tflops']:.1f} |")
    lines.append("")
  rows = [x for part in ("dre", "train", "metrics") for x in r.get(part, [])]
  if rows:
    lines += ["| part | arch | batch | program | img/s | XLA temp GiB | compile s |",
              "|---|---|---|---|---|---|---|"]
    for x in rows:
      if "images_per_s" not in x:
        lines.append(f"| {x['part']} | {x['arch']} | {x['batch']} | {x['program']} | "
                     f"error: {x.get('error', '?')[:100]} | | |")
        continue
      lines.append(
          f"| {x['part']} | {x['arch']} | {x['batch']} | {x['program']} | "
          f"{x['images_per_s']:.0f} | {x.get('temp_bytes', 0) / 2**30:.2f} | "
          f"{x.get('compile_s', 0):.0f} |")
    lines.append("")
  ex = r.get("explainers", [])
  if ex:
    lines += ["| arch | method | passes/img | ms/img batched | ms/img one-image loop | "
              "loop / batched | x fwd+grad | vs passes x fwd+grad | XLA temp GiB |",
              "|---|---|---|---|---|---|---|---|---|"]
    big = [x for x in ex if x.get("part") == "explainers_big"]
    ex = [x for x in ex if x.get("part") != "explainers_big"]
    for x in ex:
      if x.get("method") == "forward_input_grad":
        b, l = x.get("s_per_image_batched"), x.get("s_per_image_loop")
        lines.append(f"| {x['arch']} | forward + input gradient | 1 | "
                     f"{1e3 * b:.3f} | {1e3 * l:.3f} | {l / b:.1f} | 1 | 1 | |"
                     if b and l else f"| {x['arch']} | forward + input gradient | 1 | ? | ? | | | | |")
        continue
      if "s_per_image_loop" not in x:
        lines.append(f"| {x['arch']} | {x['method']} | {x.get('passes_per_image', 0):.0f} | "
                     f"error: {x.get('error', '?')[:120]} | | | | | |")
        continue
      lines.append(
          f"| {x['arch']} | {x['method']} | {x['passes_per_image']:.3g} | "
          f"{1e3 * x['s_per_image_batched']:.3f} | {1e3 * x['s_per_image_loop']:.3f} | "
          f"{x['batched_speedup']:.1f} | {x.get('x_forward_input_grad', float('nan')):.1f} | "
          f"{x.get('x_passes_prediction', float('nan')):.2f} | {x.get('temp_bytes', 0) / 2**30:.2f} |")
    if big:
      lines += ["", "| arch | method | batch | ms/img batched | x fwd+grad | XLA temp GiB |",
                "|---|---|---|---|---|---|"]
      for x in big:
        if not x.get("s_per_image_batched"):
          lines.append(f"| {x['arch']} | {x['method']} | {x['batch']} | "
                       f"error: {x.get('error', '?')[:100]} | | | | |")
          continue
        lines.append(f"| {x['arch']} | {x['method']} | {x['batch']} | "
                     f"{1e3 * x['s_per_image_batched']:.3f} | "
                     f"{x.get('x_forward_input_grad', 1.0):.1f} | "
                     f"{x.get('temp_bytes', 0) / 2**30:.2f} |")
  return "\n".join(lines)


def reference(path: str) -> str:
  with open(path) as f:
    r = json.load(f)
  lines = [f"`{r.get('command')}`", "", f"data: {r.get('data')}", ""]
  tr = r.get("training", {})
  if tr:
    lines += ["| objective | stage | steps | median img/s | last loss | wall s (stage, from log times) |",
              "|---|---|---|---|---|---|"]
    for obj, t in tr.items():
      for stage, st in t.get("stages", {}).items():
        steps = st.get("steps", [])
        last = next((s for s in reversed(steps) if "loss" in s), {})
        lines.append(f"| {obj} | {stage} | {steps[-1]['step'] if steps else '?'} | "
                     f"{st.get('median_images_per_second') or float('nan'):.0f} | "
                     f"{last.get('loss', float('nan')):.4f} | "
                     f"{st['last_time'] - st['first_time']:.0f} |")
      lines.append(f"| {obj} | total (train_and_evaluate) | | | | {t['wall_seconds']:.0f} |")
    lines.append("")
  ev = r.get("evaluation", {})
  if ev:
    lines += ["| method | test images | M_F | M_E | skewness | median skewness | generator npz MiB |",
              "|---|---|---|---|---|---|---|"]
    for k, v in ev.items():
      lines.append(f"| {k} | {v['images']} | {v['faithfulness']:.2f} | {v['explainability']:.2f} "
                   f"| {v['skewness']:.3f} | {v['median_skewness']:.3f} | "
                   f"{v.get('generator_npz_bytes', 0) / 2**20:.2f} |")
    lines.append("")
  am = r.get("all_methods", {})
  if am:
    lines += [f"All methods on the first {am['images']} test composites:", "",
              "| method | M_F | M_F normalised | M_E | skewness | wall s |", "|---|---|---|---|---|---|"]
    for k, v in am["methods"].items():
      if "faithfulness" not in v:
        lines.append(f"| {k} | {str(v)[:100]} | | | | |")
        continue
      lines.append(f"| {k} | {v['faithfulness']:.2f} | {v.get('faithfulness_normalised', float('nan')):.2f} "
                   f"| {v['explainability']:.2f} | {v['skewness']:.3f} | {v['wall_seconds']:.0f} |")
  if r.get("errors"):
    lines += ["", "Errors: " + ", ".join(r["errors"])]
  return "\n".join(lines)


def _peak(directory: str) -> dict:
  for path in sorted(glob.glob(os.path.join(directory, "bench*.json"))):
    with open(path) as f:
      p = json.load(f).get("peak")
    if p:
      return p
  return {}


def throughput(directory: str) -> str:
  """Images/s measured on the GPU x FLOPs per image counted on the CPU (flops.json)."""
  path = os.path.join(directory, "flops.json")
  peak = _peak(directory)
  if not os.path.exists(path) or not peak:
    return ""
  with open(path) as f:
    gf = json.load(f)["gflop_per_image"]
  tf32, bf16 = peak["float32_default_tflops"], peak["bfloat16_tflops"]
  rows = []  # (arch, program, batch, images/s, GFLOP/img, source)
  for log in sorted(glob.glob(os.path.join(directory, "bench_models*.log"))):
    for line in open(log):
      m = re.search(r"\] (dre|train|metrics) (\S+) float32 b(\d+) (\S+): ([\d.]+) img/s", line)
      if m and m.group(4) in gf.get(m.group(2), {}):
        rows.append((m.group(2), m.group(4), int(m.group(3)), float(m.group(5)),
                     gf[m.group(2)][m.group(4)], os.path.basename(log)))
  for path in sorted(glob.glob(os.path.join(directory, "bench_explainers*.json"))):
    with open(path) as f:
      for x in json.load(f).get("explainers", []):
        arch, method, b = x["arch"], x["method"], x.get("batch")
        counts = gf.get(arch, {})
        if method == "forward_input_grad" and x.get("s_per_image_batched"):
          rows.append((arch, "forward_input_grad", b, 1 / x["s_per_image_batched"],
                       counts.get("forward_input_grad", float("nan")), os.path.basename(path)))
        elif x.get("s_per_image_batched") and x.get("part") == "explainers":
          if f"explainer_{method}" in counts:
            g, how = counts[f"explainer_{method}"], ""
          else:
            g = x["passes_per_image"] * counts.get("forward_input_grad", float("nan"))
            how = " (passes x fwd+grad)"
          rows.append((arch, f"explainer {method}{how}", b, 1 / x["s_per_image_batched"],
                       g, os.path.basename(path)))
  ref = os.path.join(directory, "reference.json")
  if os.path.exists(ref):
    with open(ref) as f:
      r = json.load(f)
    for obj, t in r.get("training", {}).items():
      b = t["config"]["dre"]["batch_size"]
      for stage, st in t.get("stages", {}).items():
        name = "stage1_step" if stage == "embeddings" else f"stage2_step_{obj}"
        if st.get("median_images_per_second") and name in gf.get("efficientnet_lite0", {}):
          rows.append(("efficientnet_lite0", f"{name} (training run, {obj})", b,
                       st["median_images_per_second"], gf["efficientnet_lite0"][name],
                       "reference.json"))
  lines = ["| arch | program | batch | img/s (GPU) | GFLOP/img (XLA, CPU count) | TFLOP/s "
           f"| of TF32 peak ({tf32:.0f}) | of bf16 peak ({bf16:.0f}) | from |",
           "|---|---|---|---|---|---|---|---|---|"]
  for arch, prog, b, ips, g, src in rows:
    t = ips * g / 1e3
    lines.append(f"| {arch} | {prog} | {b} | {ips:.0f} | {g:.3f} | {t:.1f} | "
                 f"{t / tf32:.3f} | {t / bf16:.3f} | {src} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dir", default="results/gpu")
  args = parser.parse_args(argv)
  t = tests(args.dir)
  if t:
    print("## Tests\n\n" + t + "\n")
  for path in sorted(glob.glob(os.path.join(args.dir, "bench*.json"))):
    print(f"## {os.path.basename(path)}\n\n" + bench(path) + "\n")
  t = throughput(args.dir)
  if t:
    print("## throughput against the chip's peak\n\n" + t + "\n")
  path = os.path.join(args.dir, "reference.json")
  if os.path.exists(path):
    print("## reference run\n\n" + reference(path) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
