"""scripts/reference_table.py: the results tables of docs/results.md from results.json."""

import os
import sys

import util

SCRIPT = os.path.join(util.REPO, "scripts", "reference_table.py")


def _module():
  return util.load_module(SCRIPT)


def _results():
  row = lambda mf, raw, me: {  # noqa: E731
      "faithfulness_normalised": mf, "faithfulness": raw, "explainability": me,
      "skewness": 0.5, "median_skewness": 0.4, "seconds_per_image": 0.01}
  return {"methods": {"gcam": row(60.0, 30.0, 80.0), "dre": row(70.0, 31.0, 75.0),
                      "vgrad": row(10.0, 20.0, float("nan"))},
          "sample": {"dataset": "d", "split": "test", "seed": 0},
          "num_images": 3, "image_size": 128, "arch": "a", "normalised_images": 3}


def test_rows_in_the_paper_order_with_ranks_here_and_in_the_paper():
  lines = _module().table(_results()).splitlines()
  rows = [l for l in lines if l.startswith("| ") and not l.startswith("| method")]
  assert [r.split(" | ")[0] for r in rows] == ["| DRE", "| GCAM", "| VGrad"]
  # DRE: first here on M_F, second on M_E; the paper ranks it first on both
  # among these three (Tables 3, 4: DRE 74.37 / 82.89, GCAM 67.51 / 78.79).
  assert rows[0].endswith("| 1 (1) | 2 (1) |")
  assert rows[1].endswith("| 2 (2) | 1 (2) |")
  assert rows[2].endswith("| 3 (3) | - (3) |")  # NaN M_E: no rank


def test_unreadable_results_is_one_line(tmp_path):
  bad = tmp_path / "results.json"
  bad.write_text("{not json")
  out = util.run_cli([sys.executable, SCRIPT, str(bad)], check=False)
  assert out.returncode == 1 and "Traceback" not in out.stderr
  assert len(out.stderr.strip().splitlines()) == 1 and "results.json" in out.stderr


def test_collapsed_methods_are_not_ranked_and_intervals_name_who_is_ahead():
  results = _results()
  results["methods"]["mgnet"] = dict(results["methods"]["gcam"], collapsed="mask mean 0.0001")
  cell = lambda d, lo, hi: {"difference": d, "low": lo, "high": hi, "wins": 2,  # noqa: E731
                            "ties": 0, "losses": 1, "level": lo <= 0 <= hi}
  results["methods"]["gcam"]["versus_dre"] = {
      "faithfulness_normalised": cell(10.0, 2.0, 18.0),
      "explainability": cell(-5.0, -9.0, -1.0), "faithfulness": cell(1.0, -1.0, 3.0)}
  lines = _module().table(results).splitlines()
  mgnet = [l for l in lines if l.startswith("| MGnet")][0]
  assert "collapsed: not ranked" in mgnet and mgnet.endswith("| - (3) | - (2) |")
  gcam = [l for l in lines if l.startswith("| GCAM |")]
  assert gcam[0].endswith("| 2 (2) | 1 (3) |")  # ranks skip the collapsed MGnet
  versus = gcam[1].split(" | ")
  assert versus[1] == "+10.00 [+2.00, +18.00] 2/0/1: DRE"
  assert versus[2] == "+1.00 [-1.00, +3.00] 2/0/1: level"
  assert versus[3] == "-5.00 [-9.00, -1.00] 2/0/1: GCAM |"
