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
from dre_jax.evaluation import statistics


def display_name(method: str) -> str:
  """The registry's display name (`Method.display`); the name itself if unknown."""
  return explainers.method(method).display if method in explainers.names() else method


def _table2(method: str) -> explainers.Table2 | None:
  return explainers.method(method).table2 if method in explainers.names() else None


def table2_order(methods: Sequence[str]) -> list[str]:
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


def _collapsed(results: Sequence[dict[str, Any]], method: str) -> bool:
  return any((r["methods"].get(method) or {}).get("collapsed") for r in results)


def _table(title: str, results: Sequence[dict[str, Any]],
           cell: Callable[[dict[str, Any]], float | None],
           render: Callable[[dict[str, Any]], str] | None = None,
           mean: bool = True, methods: Sequence[str] | None = None) -> str:
  """One table, a row per method (`methods`, default every evaluated one;
  collapsed ones marked), a column per results."""
  columns = _columns(results)
  methods = table2_order(list(dict.fromkeys(
      methods if methods is not None else
      [m for r in results for m in r["methods"]])))
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
    row = [display_name(m) + (" (collapsed)" if _collapsed(results, m) else "")]
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
  """A metric's table (`scoring.Table`): its value, the second in parentheses;
  a normalised metric's, one per pool (`_pool_tables`)."""
  if table.key.endswith("_normalised") and "pools" in results[0]:
    return _pool_tables(table, results)
  def render_entry(e):
    text = _fmt(_value(e, table.key), table.digits)
    if table.paren:
      text += f" ({_fmt(_value(e, table.paren), table.digits)})"
    return text
  return _table(table.title, results, lambda e: _value(e, table.key),
                render=render_entry, mean=table.mean)


def _pool_tables(table: scoring.Table, results: Sequence[dict[str, Any]]) -> str:
  """A normalised metric's table for each pool (`results.summarise`): the
  pool's methods, each cell the pool's mean and rank (raw in parentheses),
  the pool stated under it."""
  names = list(dict.fromkeys(p["name"] for r in results for p in r["pools"]))
  parts = []
  for pool in names:
    infos = [next((p for p in r["pools"] if p["name"] == pool), None)
             for r in results]
    members = [m for info in infos if info
               for m in info["methods"] + info["collapsed"]]
    value = lambda e: (e.get("pools", {}).get(pool) or {}).get(table.key)  # noqa: E731

    def render_entry(e):
      if e.get("collapsed"):
        return "-"
      rank = (e.get("pools", {}).get(pool) or {}).get(f"{table.key}_rank")
      text = _fmt(value(e), table.digits)
      text += f" ({_fmt(_value(e, table.paren), table.digits)})" if table.paren else ""
      return text + (f" #{rank}" if rank else "")

    # The first pool is the paper's table; the others are tables of their own.
    title = (table.title if pool == names[0] else
             table.title.split(": ", 1)[-1].capitalize()) + f"; pool `{pool}`"
    parts.append(_table(title, results, value, render=render_entry,
                        mean=table.mean, methods=members))
    for r, info in zip(results, infos):
      if not info:
        continue
      who = r.get("label") or r.get("arch", "?")
      notes = [f"min-max over {', '.join(display_name(m) for m in info['methods'])} "
               f"per image ({info['images']} images count; #k: rank)"]
      if info["not_evaluated"]:
        notes.append("not evaluated: " + ", ".join(
            display_name(m) for m in info["not_evaluated"]))
      if info["collapsed"]:
        notes.append("collapsed, left out of the pool and the ranks: " + ", ".join(
            display_name(m) for m in info["collapsed"]))
      parts.append(f"\nPool `{pool}` ({who}): " + "; ".join(notes) + ".")
    parts.append("")
  outside = sorted({m for r in results for m, e in r["methods"].items()
                    if e.get("pool") is None and not e.get("collapsed")})
  if outside:
    parts.append("In no pool (no normalised M_F): "
                 + ", ".join(display_name(m) for m in outside) + ".\n")
  return "\n".join(parts).rstrip("\n")


# The "DRE minus method" tables (`results.COMPARED`): key, label.
VERSUS = (("faithfulness_normalised", "M_F normalised"),
          ("faithfulness", "M_F raw"), ("explainability", "M_E"))


def _versus_cell(c: dict[str, Any] | None) -> str:
  if not c:
    return "-"
  return ("level " if c["level"] else "") + statistics.text(c)


def _versus_tables(results: Sequence[dict[str, Any]]) -> list[str]:
  """DRE minus each method per metric: mean difference, bootstrap interval,
  wins / ties / losses; "level" where the interval contains zero."""
  others = [m for r in results for m, e in r["methods"].items() if "versus_dre" in e]
  if not others:
    return []
  b = results[0]["bootstrap"]
  parts = [f"DRE minus each method over the same images: the mean per-image "
           f"difference, its paired percentile bootstrap {b['confidence']:.0%} "
           f"interval ({b['resamples']} resamples, seed {b['seed']}) and "
           f"DRE's wins/ties/losses over the images (|difference| <= "
           f"{b['tie_tolerance']:g}: a tie); \"level\": the interval contains "
           "zero. Normalised M_F within a pool holding both.", ""]
  for key, label in VERSUS:
    parts += [_table(f"DRE minus method: {label}", results,
                     lambda e, k=key: (e.get("versus_dre") or {}).get(k),
                     render=lambda e, k=key: _versus_cell(
                         (e.get("versus_dre") or {}).get(k)),
                     mean=False, methods=others), ""]
  return parts


def _sanity_table(results: Sequence[dict[str, Any]]) -> list[str]:
  """The randomisation test (`sanity.randomisation_checks`) where it was run:
  per method the mean rank correlation at each depth, the deepest one's
  bootstrap interval, pass or FAIL."""
  ran = [r for r in results if "sanity" in r]
  if not ran:
    return []
  s = ran[0]["sanity"]

  def cell(e):
    levels = (e.get("sanity") or {}).get("rank_correlation") or []
    if not levels:
      return "-"
    last = levels[-1]
    verdict = {True: "pass", False: "FAIL",
               None: "inconclusive"}[e["sanity"]["passed"]]
    interval = ("" if last["mean"] is None else
                f" [{last['low']:.2f}, {last['high']:.2f}]")
    return (" / ".join(_fmt(level["mean"]) for level in levels) + interval
            + f" {verdict}")

  depths = ", ".join(f"the top {len(mods)} down to {mods[-1]}"
                     for mods in s["levels"])
  return [_table("Sanity: model-parameter randomisation test (Adebayo et al. "
                 "2018)", results,
                 lambda e: ((e.get("sanity") or {}).get("rank_correlation")
                            or [{}])[-1].get("mean"),
                 render=cell, mean=False,
                 methods=[m for r in ran for m in r["methods"]
                          if "sanity" in r["methods"][m]]),
          "",
          f"{s['measure']}, mean over {s['images']} images, the classifier's "
          f"modules re-initialised in a cascade ({depths}); the deepest "
          f"level's percentile bootstrap "
          f"{ran[0]['bootstrap']['confidence']:.0%} interval in brackets. FAIL: mean "
          f"above {s['threshold']:g} at the deepest level: the maps do not "
          f"depend on the classifier; the method is marked collapsed and not "
          f"ranked. inconclusive: no finite correlation at the deepest level "
          f"(the maps constant under the trained or the randomised classifier on "
          f"every image); the method stays ranked.", ""]


def render(results: Sequence[dict[str, Any]]) -> str:
  """The markdown of Tables 2-5 (and skewness, tie-breaker) for these results."""
  first = results[0]
  p = first["protocol"]
  tb = p["tie_break"]
  tie = ("off" if tb["sigma"] == 0 else
         f"a smoothed copy of the min-max normalised map (Gaussian sigma "
         f"{tb['sigma']:.4g} x image side) "
         + ("as the second sort key (only equal scores reordered)"
            if tb["weight"] == 0 else
            f"added with weight {tb['weight']:g}, then the second sort key"))
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
      + ("M_F: min-max per image over the methods of a pool, then the mean (the "
         "paper's Tables 3 and 5: DRE and the nine baselines); each table states "
         "its pool." if "pools" in first else
         "M_F: min-max per image over the evaluated methods, then the mean.")
      + " M_E: Eq. 11 on the box masks."
      + ("" if "collapse_rule" not in first else
         f" A method is {first['collapse_rule']}; it is marked and not ranked."),
      "",
      _table("Table 2: cost (measured seconds per image; the paper's counts)",
             results, lambda e: e["seconds_per_image"],
             render=lambda e: f"{e['seconds_per_image']:.4f}", mean=False),
      "",
      "| method | sensitive hyper-parameters (paper) | iterations per explanation (paper) |",
      "|---|---|---|",
      *[f"| {display_name(m)} | {_table2(m).sensitive} | {_table2(m).iterations} |"
        for m in table2_order(list(first["methods"])) if _table2(m)],
      "",
      *[part for m in scoring.METRICS if m.table
        for part in (_metric_table(m.table, results), "")],
      *_versus_tables(results),
      *_sanity_table(results),
  ]
  return "\n".join(parts)


# Printed after the metrics' columns (`scoring.Metric.columns`).
COST_COLUMN = scoring.Column("seconds_per_image", "s/img", 8, digits=4)
# The method of the quickstart's line when it was evaluated (else the first).
HEADLINE_METHOD = explainers.PROPOSED


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
