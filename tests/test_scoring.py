"""The metric table (dre_jax.evaluation.scoring) and the cache built on it.

* A cached shard without one of the metrics is recomputed by the next run
  (and `collect` names what it lacks instead of a KeyError); shards of an
  older metric set sit in other directories.
* A new metric is one entry of `scoring.METRICS`: it reaches the shard files,
  the per-image arrays, the summary, tables.md and the printed lines.
* Maps that are not finite: NaN metrics, except the tied fraction and the
  finite flag; M_E only with boxes, M_F without the tie-breaker only when asked.
* The printed lines are evaluate.py's, character for character.
"""

import importlib.util
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eval_util
import util
from dre_jax import metrics
from dre_jax.classifier import Classifier
from dre_jax.evaluation import cache
from dre_jax.evaluation import protocol
from dre_jax.evaluation import scoring
from dre_jax.evaluation import tables

NUM_IMAGES = 8  # one shard of eval_util.PROTOCOL_KW


@pytest.fixture
def metric_set(monkeypatch):
  """Sets scoring.METRICS for one test. jax.jit caches traces by function, and
  the table is constant within a process: the caches are cleared."""
  def use(table):
    monkeypatch.setattr(scoring, "METRICS", table)
    jax.clear_caches()
  yield use
  monkeypatch.undo()
  jax.clear_caches()


def _method_dirs(cache_dir, name):
  return sorted(d for d in os.listdir(cache_dir) if d.startswith(f"{name}-"))


def _shard(cache_dir, name):
  (directory,) = _method_dirs(cache_dir, name)
  return os.path.join(cache_dir, directory, cache.SHARD_FILE.format(0))


def test_a_shard_without_a_metric_is_recomputed(tmp_path):
  cache_dir = str(tmp_path / "cache")
  summary, per_image = eval_util.run_protocol(cache_dir, NUM_IMAGES)
  path = _shard(cache_dir, "random")
  with np.load(path) as f:
    older = {k: f[k] for k in f.files if k != "skewness"}
  np.savez(path, **older)  # as a run of a metric set without skewness wrote it

  _, _, methods = eval_util.protocol_inputs(NUM_IMAGES)
  sample = protocol.make_sample(NUM_IMAGES + 7, num_images=NUM_IMAGES, seed=5)
  p = protocol.Protocol(**eval_util.PROTOCOL_KW)
  dirs = {cache.COMMON: os.path.dirname(_shard(cache_dir, cache.COMMON)),
          **{m.name: os.path.dirname(_shard(cache_dir, m.name)) for m in methods}}
  with pytest.raises(ValueError, match="lacks skewness.*rerun"):
    cache.collect(dirs, [m.name for m in methods], sample, p)
  assert cache.done_matrix(dirs, [m.name for m in methods], 1).tolist() == [
      [True, True, False, True]]

  again, again_per_image = eval_util.run_protocol(cache_dir, NUM_IMAGES)
  with np.load(path) as f:
    assert "skewness" in f.files
  assert set(again_per_image) == set(per_image)
  for key, value in per_image.items():
    np.testing.assert_array_equal(again_per_image[key], value, err_msg=key)
  assert (again["methods"]["random"]["skewness"]
          == summary["methods"]["random"]["skewness"])


@pytest.mark.slow  # two protocol runs, ~17 s
def test_an_older_metric_set_has_other_cache_directories(tmp_path, metric_set):
  cache_dir = str(tmp_path / "cache")
  current = scoring.METRICS
  metric_set(tuple(m for m in current if m.name != "median_skewness"))
  eval_util.run_protocol(cache_dir, NUM_IMAGES)
  older = _shard(cache_dir, "centre")
  with np.load(older) as f:
    assert "median_skewness" not in f.files and "skewness" in f.files
  metric_set(current)
  summary, per_image = eval_util.run_protocol(cache_dir, NUM_IMAGES)
  assert len(_method_dirs(cache_dir, "centre")) == 2  # one per metric set
  assert len(_method_dirs(cache_dir, "common")) == 1  # holds no metric
  assert summary["methods"]["centre"]["median_skewness"] is not None
  assert "centre/median_skewness" in per_image
  spec = cache.spec(protocol.EvalMethod("centre", None), "clf",
                    protocol.make_sample(4), protocol.Protocol())
  assert spec["metrics"] == list(scoring.names())


def _peak(batch):
  return jnp.max(batch.saliency, axis=(1, 2))


PEAK = scoring.Metric("peak", _peak, columns=(scoring.Column("peak", "peak", 6),),
                      table=scoring.Table("Peak score of the maps", "peak"))


def _results(summary):
  return {**summary, "num_images": NUM_IMAGES, "dataset": "arrays",
          "split": "test", "arch": "tiny_cnn", "image_size": eval_util.SIZE,
          "sample": {"seed": 5},
          "protocol": {"num_steps": 8, "tie_break": {"sigma": 1 / 16, "weight": 0}}}


@pytest.mark.slow  # a protocol run, ~8 s
def test_a_new_metric_is_one_table_entry(tmp_path, metric_set):
  metric_set(scoring.METRICS + (PEAK,))
  cache_dir = str(tmp_path / "cache")
  summary, per_image = eval_util.run_protocol(cache_dir, NUM_IMAGES)
  with np.load(_shard(cache_dir, "box")) as f:
    assert "peak" in f.files
  np.testing.assert_array_equal(per_image["box/peak"], 1.0)  # the box map is 0 / 1
  random_peak = per_image["random/peak"]
  assert random_peak.shape == (NUM_IMAGES,) and np.all(random_peak < 1)
  assert summary["methods"]["random"]["peak"] == pytest.approx(random_peak.mean())
  results = _results(summary)
  markdown = tables.render([results])
  assert "### Peak score of the maps" in markdown
  assert "| box | 1.00 |" in markdown
  lines = tables.summary_lines(results)
  assert lines[0].split()[-2:] == ["peak", "s/img"]
  assert lines[-1].startswith("[evaluate] 8 images of arrays/test (centre): {")
  assert f'"peak": {round(summary["methods"]["centre"]["peak"], 2)}' in lines[-1]


def _tiny():
  clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=4, image_size=32)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(0, 1, (3, 32, 32, 3)), jnp.float32)
  maps = rng.normal(size=(3, 32, 32)).astype(np.float32)
  maps[1, 3, 4] = np.nan
  maps[2] = np.round(maps[2])  # ties
  boxes = np.zeros((3, 32, 32), np.float32)
  boxes[:, 8:20, 4:24] = 1
  return clf, images, jnp.asarray(maps), jnp.asarray([0, 1, 2]), jnp.asarray(boxes)


@pytest.mark.slow  # ~12 s of compilation
def test_nonfinite_maps_boxes_and_the_untied_curve():
  clf, images, maps, target, boxes = _tiny()
  settings = protocol.Protocol(num_steps=8)
  out = scoring.score(clf, images, maps, target, boxes, protocol=settings,
                      untied=True)
  assert set(out) == set(scoring.names())
  assert out["finite"].tolist() == [True, False, True]
  for name in ("faithfulness", "faithfulness_untied", "explainability",
               "skewness", "median_skewness"):
    assert np.isnan(out[name][1]) and np.all(np.isfinite(out[name][[0, 2]])), name
  assert np.all(np.isnan(out["curve"][1])) and np.all(np.isfinite(out["curve"][0]))
  assert np.all(np.isfinite(out["tied_fraction"]))
  # The same numbers as the metric functions called directly.
  curve = metrics.insertion_curve(clf.probability, images, maps, target, num_steps=8,
                                  steps_per_call=settings.steps_per_call)
  np.testing.assert_array_equal(out["faithfulness"][[0, 2]],
                                np.asarray(metrics.faithfulness(curve))[[0, 2]])
  untied = metrics.faithfulness(metrics.insertion_curve(
      clf.probability, images, maps, target, num_steps=8,
      steps_per_call=settings.steps_per_call, tie_break=metrics.NO_TIE_BREAK))
  np.testing.assert_array_equal(out["faithfulness_untied"][[0, 2]],
                                np.asarray(untied)[[0, 2]])
  assert out["faithfulness_untied"][0] == out["faithfulness"][0]  # no ties
  np.testing.assert_array_equal(
      out["explainability"][[0, 2]],
      np.asarray(metrics.explainability(maps, boxes))[[0, 2]])
  # Without boxes, or without asking for the untied curve: NaN.
  plain = jax.jit(scoring.compute, static_argnames=("protocol", "untied"))(
      clf, images, maps, target, None, protocol=settings)
  assert np.all(np.isnan(plain["explainability"]))
  assert np.all(np.isnan(plain["faithfulness_untied"]))
  np.testing.assert_allclose(plain["faithfulness"][0], out["faithfulness"][0],
                             rtol=1e-6)


def test_natural_photos_scores_with_the_library():
  spec = importlib.util.spec_from_file_location(
      "natural_photos", os.path.join(util.REPO, "scripts", "natural_photos.py"))
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  clf, images, maps, target, boxes = _tiny()
  got = script.score(types.SimpleNamespace(classifier=clf), np.asarray(maps),
                     np.asarray(images), np.asarray(boxes), np.asarray(target))
  want = scoring.score(clf, images, maps, target, boxes,
                       protocol=protocol.Protocol(num_steps=32, steps_per_call=4))
  for name in ("explainability", "faithfulness", "skewness"):
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)
  assert np.isnan(got["faithfulness"][1])


RESULTS = {
    "num_images": 16, "dataset": "tiny_boxes", "split": "test",
    "methods": {
        "gcam": {"faithfulness": 51.4355, "faithfulness_normalised": 52.29,
                 "explainability": None, "skewness": -0.0312,
                 "seconds_per_image": 0.00091234},
        "a_long_method_name": {"faithfulness": 1234.5, "faithfulness_normalised": None,
                               "explainability": 15.149, "skewness": 2.2912,
                               "seconds_per_image": 12.5},
    },
}


def test_summary_lines_are_what_evaluate_prints():
  assert tables.summary_lines(RESULTS) == [
      "[evaluate] method         M_F M_F norm     M_E   skew    s/img",
      "[evaluate] gcam         51.44    52.29       -  -0.03   0.0009",
      "[evaluate] a_long_method_name 1234.50        -   15.15   2.29  12.5000",
      '[evaluate] 16 images of tiny_boxes/test (gcam): {"faithfulness": 51.44, '
      '"skewness": -0.03}',
  ]
  with_dre = {**RESULTS, "methods": {
      **RESULTS["methods"], "dre": RESULTS["methods"]["a_long_method_name"]}}
  assert tables.summary_lines(with_dre)[-1] == (
      '[evaluate] 16 images of tiny_boxes/test: {"faithfulness": 1234.5, '
      '"explainability": 15.15, "skewness": 2.29}')
