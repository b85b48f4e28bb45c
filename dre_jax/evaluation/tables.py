"""`tables.md`: the paper's Tables 2-5 from one or more `results.json`; the
lines evaluate.py prints.

Each results.json (one evaluated workdir: one classifier on one dataset) is one
column; columns are grouped by dataset, with a MEAN column per dataset when it
has several classifiers, as in Tables 3 and 4. Rows are the methods in the
paper's order (DRE, MGnet, MPert, FInv, XPert, GCAM, GCAM++, VGrad, SMGrad,
ITGrad), then DRE+ and any other registered method. Table 2 is the cost;
every other table is a metric's (`scoring.Metric.table`).

    python -m dre_jax.evaluation.tables runs/*/eval/results.json > tables.md
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Sequence

from dre_jax import explainers
from dre_jax.evaluation import scoring


def display_name(method: str) -> str:
  """The registry's display name (`Method.display`); the name itself if unknown."""
  return explainers.method(method).display if method in explainers.names() else method


def _table2(method: str) -> explainers.Table2 | None:
  return explainers.method(method).table2 if method in explainers.names() else None


def _order(methods: Sequence[str]) -> list[str]:
  """Table 2's rows first, in its order, then the others sorted."""
  known = sorted((m for m in methods if _table2(m)), key=lambda m: _table2(m).row)
  return known + sorted(m for m in methods if not _table2(m))


def _columns(results: Sequence[dict[str, Any]]) -> list[tuple[str, str, int]]:
  """(dataset, column header, index into results), grouped by dataset."""
  labels = [r.get("label") or r.get("arch", "?") for r in results]
  if len(set(labels)) < len(labels):  # two runs of one arch: say which workdir
    labels = [f"{l} ({r.get('workdir', i)})" for i, (l, r) in
              enumerate(zip(labels, results))]
  datasets = list(dict.fromkeys(r.get("dataset", "?") for r in results))
  return [(d, labels[i], i) for d in datasets
          for i, r in enumerate(results) if r.get("dataset", "?") == d]


def _fmt(value, digits: int = 2) -> str:
  return "-" if value is None else f"{value:.{digits}f}"


def _table(title: str, results: Sequence[dict[str, Any]],
           cell: Callable[[dict[str, Any]], float | None],
           render: Callable[[dict[str, Any]], str] | None = None,
           mean: bool = True) -> str:
  columns = _columns(results)
  methods = _order(list(dict.fromkeys(
      m for r in results for m in r["methods"])))
  header = ["method"]
  groups: dict[str, list[int]] = {}
  for dataset, label, i in columns:
    groups.setdefault(dataset, []).append(i)
  for dataset, indices in groups.items():
    for i in indices:
      header.append(f"{dataset}: {[c[1] for c in columns if c[2] == i][0]}")
    if mean and len(indices) > 1:
      header.append(f"{dataset}: MEAN")
  lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  for m in methods:
    row = [display_name(m)]
    for dataset, indices in groups.items():
      values = []
      for i in indices:
        entry = results[i]["methods"].get(m)
        value = cell(entry) if entry else None
        values.append(value)
        row.append(render(entry) if (render and entry) else _fmt(value))
      if mean and len(indices) > 1:
        ok = [v for v in values if v is not None]
        row.append(_fmt(sum(ok) / len(ok)) if len(ok) == len(values) else "-")
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def _value(entry: dict[str, Any], key: str):
  """entry[key]; "a.b" is entry[a][b] (None where a is None)."""
  for part in key.split("."):
    entry = (entry or {}).get(part)
  return entry


def _metric_table(table: scoring.Table, results: Sequence[dict[str, Any]]) -> str:
  """A metric's table (`scoring.Table`): its value, the second in parentheses."""
  def render_entry(e):
    text = _fmt(_value(e, table.key), table.digits)
    if table.paren:
      text += f" ({_fmt(_value(e, table.paren), table.digits)})"
    return text
  return _table(table.title, results, lambda e: _value(e, table.key),
                render=render_entry, mean=table.mean)


def render(results: Sequence[dict[str, Any]]) -> str:
  """The markdown of Tables 2-5 (and skewness, tie-breaker) for these results."""
  first = results[0]
  p = first["protocol"]
  tb = p["tie_break"]
  tie = ("off" if tb["sigma"] == 0 else
         f"smoothed copy (Gaussian sigma {tb['sigma']:.4g} x image side) as "
         + ("the second sort key (only equal scores reordered)"
            if tb["weight"] == 0 else f"an added term with weight {tb['weight']:g}"))
  samples = "; ".join(
      f"{r.get('label') or r.get('arch')}: {r['num_images']} images of "
      f"{r['dataset']}/{r['split']} (seed {r['sample']['seed']}, "
      f"{r['image_size']} px)" for r in results)
  parts = [
      "# DRE evaluation (paper Sec. 4)",
      "",
      f"Samples: {samples}. Every method explains the classifier's prediction "
      f"t on the same images. M_F: Eq. 10 with Delta = 1/{p['num_steps']}, base "
      f"image blurred (sigma 10, kernel 55); tie-breaker: {tie}. Normalised "
      "M_F: min-max over the evaluated methods per image, then the mean (the "
      "paper's Tables 3 and 5). M_E: Eq. 11 on the box masks.",
      "",
      _table("Table 2: cost (measured seconds per image; the paper's counts)",
             results, lambda e: e["seconds_per_image"],
             render=lambda e: f"{e['seconds_per_image']:.4f}", mean=False),
      "",
      "| method | sensitive hyper-parameters (paper) | iterations per explanation (paper) |",
      "|---|---|---|",
      *[f"| {display_name(m)} | {_table2(m).sensitive} | {_table2(m).iterations} |"
        for m in _order(list(first["methods"])) if _table2(m)],
      "",
      *[part for m in scoring.METRICS if m.table
        for part in (_metric_table(m.table, results), "")],
  ]
  return "\n".join(parts)


# Printed after the metrics' columns (`scoring.Metric.columns`).
COST_COLUMN = scoring.Column("seconds_per_image", "s/img", 8, digits=4)
# The method of the quickstart's line when it was evaluated (else the first).
HEADLINE_METHOD = "dre"


def summary_lines(results: dict[str, Any], prefix: str = "[evaluate] ") -> list[str]:
  """What evaluate.py prints for one results.json: a table of the methods'
  metrics (`scoring.Metric.columns`, then seconds per image) and the
  quickstart's line with the N images and DRE's (or the first method's) metrics
  rounded to 2 decimals."""
  columns = [c for m in scoring.METRICS for c in m.columns] + [COST_COLUMN]
  cell = lambda v, c: (f"{v:>{c.width}.{c.digits}f}" if v is not None  # noqa: E731
                       else f"{'-':>{c.width}}")
  lines = [prefix + " ".join([f"{'method':<10}"]
                             + [f"{c.label:>{c.width}}" for c in columns])]
  for name, m in results["methods"].items():
    lines.append(prefix + " ".join([f"{name:<10}"]
                                   + [cell(m[c.key], c) for c in columns]))
  methods = results["methods"]
  name = HEADLINE_METHOD if HEADLINE_METHOD in methods else next(iter(methods))
  headline = {c.key: round(methods[name][c.key], 2) for m in scoring.METRICS
              for c in m.columns if c.key == m.name
              and methods[name][c.key] is not None}
  who = "" if name == HEADLINE_METHOD else f" ({name})"
  lines.append(f"{prefix}{results['num_images']} images of {results['dataset']}/"
               f"{results['split']}{who}: {json.dumps(headline)}")
  return lines


def main(argv: Sequence[str]) -> int:
  if len(argv) < 2:
    print("usage: python -m dre_jax.evaluation.tables RESULTS.json [...]",
          file=sys.stderr)
    return 2
  results = []
  for path in argv[1:]:
    with open(path) as f:
      results.append(json.load(f))
  sys.stdout.write(render(results))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
