"""Checks (or rewrites) the quickstart's printed figures in README.md.

    python scripts/readme_figures.py            # exit 1 with the differences, if any
    python scripts/readme_figures.py --write    # rewrite README.md's quickstart block

The record of a quickstart run is `results/quickstart/`: `results.json`, the
`eval/results.json` that `evaluate.py` wrote, and `output.txt`, the last lines
that `bash scripts/quickstart.sh` printed (the methods' table, the summary line,
the total time). The README's block between the markers `BEGIN` and `END` is
`output.txt` verbatim, and every figure in `output.txt` must be the one in
`results.json`, rounded as `evaluate.py` prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dre_jax.explainers.registry import PROPOSED  # noqa: E402
README = os.path.join(ROOT, "README.md")
RECORD = os.path.join(ROOT, "results", "quickstart")
BEGIN = "<!-- quickstart-output:begin -->"
END = "<!-- quickstart-output:end -->"

# evaluate.py's per-method line: name, M_F, M_F normalised, M_E, skewness, s/img
# ("-" where a value is missing); the figures' keys in results.json and their
# printed decimals.
COLUMNS = (("faithfulness", 2), ("faithfulness_normalised", 2),
           ("explainability", 2), ("skewness", 2), ("seconds_per_image", 4))
SUMMARY = re.compile(r"^\[evaluate\] (\d+) images of (\S+)/([^/\s:]+)(?: \((\S+)\))?: (\{.*\})$")


def _close(printed: float, value: float | None, decimals: int) -> bool:
  return value is not None and abs(printed - value) <= 0.5 * 10 ** -decimals + 1e-9


def check_output(lines: list[str], results: dict) -> list[str]:
  """Differences between the printed lines and results.json (empty: none)."""
  problems, methods = [], results["methods"]
  seen = set()
  for line in lines:
    fields = line.split()
    if len(fields) == 7 and fields[0] == "[evaluate]" and fields[1] in methods:
      name, m = fields[1], methods[fields[1]]
      seen.add(name)
      for text, (key, decimals) in zip(fields[2:], COLUMNS):
        if text == "-":
          ok = m[key] is None
        else:
          ok = _close(float(text), m[key], decimals)
        if not ok:
          problems.append(f"{name} {key}: printed {text}, results.json {m[key]}")
      continue
    match = SUMMARY.match(line)
    if match:
      num, dataset, split, who, figures = match.groups()
      name = who or PROPOSED  # evaluate.py names any other headline method
      seen.add("summary")
      if (int(num), dataset, split) != (results["num_images"], results["dataset"],
                                        results["split"]):
        problems.append(f"summary line: {num} images of {dataset}/{split}, results.json "
                        f"{results['num_images']} of {results['dataset']}/{results['split']}")
      for key, printed in json.loads(figures).items():
        if not _close(printed, methods[name][key], 2):
          problems.append(f"summary {name} {key}: printed {printed}, results.json "
                          f"{methods[name][key]}")
  missing = sorted((set(methods) | {"summary"}) - seen)
  if missing:
    problems.append(f"output.txt has no line for {', '.join(missing)}")
  return problems


def readme_block(text: str) -> tuple[int, int]:
  """(start, end) offsets of the lines between the markers' code fences."""
  try:
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END, start)
  except ValueError:
    raise SystemExit(f"README.md has no block between {BEGIN} and {END}") from None
  return start, end


def fenced(lines: list[str]) -> str:
  return "\n```\n" + "".join(line + "\n" for line in lines) + "```\n"


def load_record(record: str = RECORD) -> tuple[dict, list[str]]:
  with open(os.path.join(record, "results.json")) as f:
    results = json.load(f)
  with open(os.path.join(record, "output.txt")) as f:
    lines = f.read().rstrip("\n").split("\n")
  return results, lines


def check(readme: str = README, record: str = RECORD) -> list[str]:
  """Every difference between README.md's block, output.txt and results.json."""
  results, lines = load_record(record)
  problems = check_output(lines, results)
  with open(readme) as f:
    text = f.read()
  start, end = readme_block(text)
  if text[start:end] != fenced(lines):
    problems.append(f"README.md's quickstart block is not {os.path.relpath(record, ROOT)}"
                    "/output.txt (python scripts/readme_figures.py --write)")
  return problems


def write(readme: str = README, record: str = RECORD) -> None:
  results, lines = load_record(record)
  problems = check_output(lines, results)
  if problems:
    raise SystemExit("output.txt and results.json differ (not from one run?):\n  "
                     + "\n  ".join(problems))
  with open(readme) as f:
    text = f.read()
  start, end = readme_block(text)
  with open(readme, "w") as f:
    f.write(text[:start] + fenced(lines) + text[end:])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--write", action="store_true",
                      help="rewrite README.md's block from results/quickstart/")
  args = parser.parse_args(argv)
  if args.write:
    write()
    print("README.md: quickstart block written from results/quickstart/")
    return 0
  problems = check()
  for p in problems:
    print(p, file=sys.stderr)
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
