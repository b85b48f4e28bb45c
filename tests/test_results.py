"""The summary of the per-image arrays (dre_jax.evaluation.results) by hand.

* Normalisation pools: M_F min-max normalised per image within each pool (the
  paper's Tables 3 and 5 pool, DRE+ in its own), a hand-computed example; a
  method in no pool has no normalised M_F ("-" in tables.md); ranks per pool.
* Collapsed methods (near-constant maps, a mask's mean near 0 or 1) are
  flagged, left out of the pools and the ranks, and marked in tables.md.
* DRE minus each method: intervals and win / tie / loss counts per metric,
  the normalised M_F within a pool holding both; "level" in tables.md.
* config.eval.pools is parsed and checked.
"""

import numpy as np
import pytest

from dre_jax import config as config_lib
from dre_jax.evaluation import config as eval_config
from dre_jax.evaluation import results
from dre_jax.evaluation import sanity
from dre_jax.evaluation import scoring
from dre_jax.evaluation import tables

M_F = {"dre": [60, 50, 40], "gcam": [30, 70, 40], "vgrad": [20, 30, 40],
       "dre+self": [80, 50, 45], "finv": [55, 45, 35],
       "mpert": [100, 100, 100]}  # mpert: a saturated mask
POOLS = {"paper": ["dre", "mgnet", "mpert", "gcam", "vgrad"],
         "dre+": ["dre", "dre+self", "mgnet"]}


def _arrays(mf, spread=0.3, mean=0.4):
  n = len(mf)
  a = {name: np.full(n, 0.5) for name in scoring.names()}
  a.update(curve=np.zeros((n, 3)), finite=np.ones(n, bool),
           faithfulness=np.asarray(mf, np.float64),
           explainability=np.asarray(mf, np.float64) / 2,
           map_spread=np.full(n, spread), map_mean=np.full(n, mean),
           faithfulness_untied=np.full(n, np.nan), seconds=1.0, rows_processed=n)
  return a


def _common():
  return {"index": np.arange(3), "target": np.zeros(3, int), "label": np.zeros(3, int)}


def _summary():
  per_method = {m: _arrays(v, mean=0.99 if m == "mpert" else 0.4)
                for m, v in M_F.items()}
  return results.summarise(per_method, _common(), labels_match=True, pools=POOLS,
                           resamples=2_000, seed=3)


def test_pools_normalise_within_each_table_by_hand():
  summary, per_image = _summary()
  methods = summary["methods"]
  # Pool "paper" (mpert collapsed, mgnet not evaluated): image 1 min 20 max 60,
  # image 2 min 30 max 70, image 3 all 40 (left out).
  np.testing.assert_allclose(per_image["dre/faithfulness_normalised"], [100, 50, np.nan])
  np.testing.assert_allclose(per_image["gcam/faithfulness_normalised"], [25, 100, np.nan])
  np.testing.assert_allclose(per_image["vgrad/faithfulness_normalised"], [0, 0, np.nan])
  assert methods["dre"]["faithfulness_normalised"] == pytest.approx(75)
  assert methods["gcam"]["faithfulness_normalised"] == pytest.approx(62.5)
  assert [methods[m]["pools"]["paper"]["faithfulness_normalised_rank"]
          for m in ("dre", "gcam", "vgrad")] == [1, 2, 3]
  # Pool "dre+": dre 60/50/40 against dre+self 80/50/45 (image 2 level).
  np.testing.assert_allclose(per_image["dre+self/faithfulness_normalised"],
                             [100, np.nan, 100])
  assert methods["dre"]["pools"]["dre+"] == {
      "faithfulness_normalised": 0.0, "faithfulness_normalised_rank": 2}
  assert methods["dre"]["pool"] == "paper" and methods["dre+self"]["pool"] == "dre+"
  # In no pool: no normalised value, no rank.
  assert methods["finv"]["pool"] is None and methods["finv"]["pools"] == {}
  assert methods["finv"]["faithfulness_normalised"] is None
  assert np.all(np.isnan(per_image["finv/faithfulness_normalised"]))
  assert summary["pools"] == [
      {"name": "paper", "methods": ["dre", "gcam", "vgrad"], "collapsed": ["mpert"],
       "not_evaluated": ["mgnet"], "images": 2},
      {"name": "dre+", "methods": ["dre", "dre+self"], "collapsed": [],
       "not_evaluated": ["mgnet"], "images": 2}]
  # Without pools: one pool of every method that has not collapsed.
  per_method = {m: _arrays(v) for m, v in M_F.items() if m != "mpert"}
  everything, _ = results.summarise(per_method, _common(), labels_match=True)
  assert everything["pools"][0]["methods"] == list(per_method)


def test_collapsed_methods_are_flagged_and_not_ranked():
  summary, per_image = _summary()
  mpert = summary["methods"]["mpert"]
  assert mpert["collapsed"].startswith("mask mean outside (0.02, 0.98) on 3 of 3")
  assert mpert["pool"] is None and mpert["pools"] == {}
  assert mpert["faithfulness_normalised"] is None
  assert np.all(np.isnan(per_image["mpert/faithfulness_normalised"]))
  assert mpert["faithfulness"] == pytest.approx(100)  # raw values stay
  assert all(summary["methods"][m]["collapsed"] is None for m in M_F if m != "mpert")
  # The rule itself: near-constant maps on most images, for any output; a
  # mask's mean only for masks.
  assert sanity.collapse(_arrays([1, 2, 3], spread=1e-7), "attribution").startswith(
      "near-constant maps on 3 of 3 images")
  two_of_three = _arrays([1, 2, 3])
  two_of_three["map_spread"] = np.array([1e-8, 0.0, 0.2])
  assert sanity.collapse(two_of_three, "mask") is not None
  two_of_three["map_spread"] = np.array([1e-8, 0.2, np.nan])  # 1 of 2 finite
  assert sanity.collapse(two_of_three, "mask") is None
  assert sanity.collapse(_arrays([1, 2, 3], mean=0.99), "attribution") is None
  assert sanity.collapse(_arrays([1, 2, 3], mean=0.01), "mask") is not None
  assert sanity.collapse(_arrays([1, 2, 3], mean=0.5), "mask") is None


def test_dre_minus_each_method():
  summary, _ = _summary()
  m = summary["methods"]
  assert "versus_dre" not in m["dre"]
  gcam = m["gcam"]["versus_dre"]
  assert gcam["faithfulness_normalised"]["pool"] == "paper"
  assert gcam["faithfulness_normalised"]["difference"] == pytest.approx((75 - 50) / 2)
  assert (gcam["faithfulness"]["wins"], gcam["faithfulness"]["ties"],
          gcam["faithfulness"]["losses"]) == (1, 1, 1)
  assert gcam["faithfulness"]["level"]
  finv = m["finv"]["versus_dre"]  # DRE is 5 above FInv on every image
  assert finv["faithfulness_normalised"] is None
  assert (finv["faithfulness"]["low"], finv["faithfulness"]["high"]) == (
      pytest.approx(5), pytest.approx(5))
  assert finv["explainability"]["difference"] == pytest.approx(2.5)
  assert not finv["faithfulness"]["level"]
  plus = m["dre+self"]["versus_dre"]["faithfulness_normalised"]
  assert plus["pool"] == "dre+" and plus["difference"] == pytest.approx(-100)
  assert summary["bootstrap"]["resamples"] == 2_000


def test_tables_state_pools_collapse_and_intervals():
  summary, _ = _summary()
  markdown = tables.render([{
      **summary, "num_images": 3, "dataset": "arrays", "split": "test",
      "arch": "tiny_cnn", "image_size": 64, "sample": {"seed": 5},
      "protocol": {"num_steps": 8, "tie_break": {"sigma": 1 / 16, "weight": 1e-3}}}])
  assert "added with weight 0.001" in markdown
  assert "pool `paper`" in markdown and "pool `dre+`" in markdown
  assert ("Pool `paper` (tiny_cnn): min-max over DRE, GCAM, VGrad per image "
          "(2 images count; #k: rank); not evaluated: MGnet; collapsed, left out "
          "of the pool and the ranks: MPert.") in markdown
  assert "| DRE | 75.00 (50.00) #1 |" in markdown
  assert "| MPert (collapsed) | - |" in markdown
  assert "In no pool (no normalised M_F): FInv." in markdown
  assert "### DRE minus method: M_F raw" in markdown
  assert "| FInv | +5.00 [+5.00, +5.00] 3/0/0 |" in markdown
  assert "| GCAM | level +3.33 [" in markdown


def test_config_pools_are_parsed_and_checked():
  c = config_lib.eval_defaults()
  pools = eval_config.pools(c)
  assert pools["paper"] == ["dre", "mgnet", "mpert", "finv", "xpert", "gcam",
                            "gcam++", "vgrad", "smgrad", "itgrad"]
  assert pools["dre+"] == ["dre", "dre+self", "dre+mgnet", "mgnet"]
  for bad in (("dre,gcam",), ("a=dre", "a=gcam"), ("a=",)):
    c.pools = bad
    with pytest.raises(ValueError, match="config.eval.pools entry"):
      eval_config.validate(c)
  c.pools = ("a=dre,gcamm",)
  with pytest.raises(KeyError, match="gcam"):
    eval_config.pools(c)
  c.pools = ()
  assert eval_config.pools(c) == {}
