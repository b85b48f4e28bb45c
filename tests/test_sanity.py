"""The model-parameter randomisation test (dre_jax.evaluation.sanity, Adebayo
et al. 2018) on tiny_cnn at 32 px.

* `cascade` re-initialises exactly the top modules (`top_modules`: the
  forward order reversed), leaves every other variable bit-identical, is
  deterministic for a key and cascades (a module's new values do not depend
  on the depth).
* `rank_correlation` equals scipy.stats.spearmanr of |map| image by image.
* On a trained tiny classifier, maps that ignore the model (the image's
  channel mean, an edge filter) FAIL and the vanilla gradient PASSES.
* `results.summarise` flags a failed method as collapsed (not ranked) and
  records the correlations; tables.md shows the sanity table.
* evaluate (in-process, slow): config.eval.sanity_images writes the numbers
  to results.json and flags a model-independent method.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import tensorflow_datasets as tfds

from dre_jax import explainers
from dre_jax.classifier import Classifier
from dre_jax.evaluation import protocol
from dre_jax.evaluation import results
from dre_jax.evaluation import sanity
from dre_jax.evaluation import scoring
from dre_jax.evaluation import statistics
from dre_jax.evaluation import tables
import eval_util

SIZE = 32
TINY_ORDER = ("fc", "bn4", "conv4", "bn3", "conv3", "bn2", "conv2", "bn1", "conv1")


def _perturbed_classifier():
  """tiny_cnn whose every variable differs from any initialisation."""
  clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=4,
                        image_size=SIZE)
  leaves, tree = jax.tree.flatten(clf.variables)
  keys = jax.random.split(jax.random.key(7), len(leaves))
  noisy = [x + 0.1 + 0.1 * jax.random.uniform(k, x.shape)
           for x, k in zip(leaves, keys)]
  return clf.replace(variables=jax.tree.unflatten(tree, noisy))


def test_top_modules_follow_the_forward_pass():
  clf = _perturbed_classifier()
  assert sanity.top_modules(clf) == TINY_ORDER


@pytest.mark.parametrize("depth", [1, 2, 3, None])
def test_cascade_changes_exactly_the_top_modules(depth):
  clf = _perturbed_classifier()
  key = jax.random.key(11)
  out = sanity.cascade(clf, key, [depth])[0]
  fresh = clf.module.init(key, jnp.zeros((1, 64, 64, 3)), train=False)
  top = set(TINY_ORDER[:depth])
  assert len(top) == (depth or len(TINY_ORDER))
  for collection, tree in clf.variables.items():
    assert set(out.variables[collection]) == set(tree)
    for name, module in tree.items():
      for (path, old), (_, new) in zip(
          jax.tree_util.tree_leaves_with_path(module),
          jax.tree_util.tree_leaves_with_path(out.variables[collection][name])):
        if name in top:  # the architecture's initial values, none trained
          want = fresh[collection][name]
          for part in path:
            want = want[part.key]
          np.testing.assert_array_equal(new, want)
          assert not np.array_equal(new, old), (collection, name, path)
        else:
          np.testing.assert_array_equal(new, old)  # bit-identical
  # Deterministic for a key; another key changes the weights; a cascade.
  again = sanity.cascade(clf, key, [depth])[0]
  for a, b in zip(jax.tree.leaves(out.variables), jax.tree.leaves(again.variables)):
    np.testing.assert_array_equal(a, b)
  other = sanity.cascade(clf, jax.random.key(12), [depth])[0]
  assert not np.array_equal(other.variables["params"]["fc"]["kernel"],
                            out.variables["params"]["fc"]["kernel"])
  first = sanity.cascade(clf, key, [1])[0]
  np.testing.assert_array_equal(first.variables["params"]["fc"]["kernel"],
                                out.variables["params"]["fc"]["kernel"])
  assert out.spec is clf.spec and out.mean == clf.mean and out.std == clf.std


def test_rank_correlation_is_spearman_of_the_absolute_maps():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(6, 8, 8))
  b = a + 0.7 * rng.normal(size=a.shape)
  a[0] = np.round(a[0])  # ties, averaged as spearmanr does
  b[1] = -b[1]           # the sign is ignored
  got = sanity.rank_correlation(a, b)
  want = [scipy.stats.spearmanr(np.abs(x).ravel(), np.abs(y).ravel()).statistic
          for x, y in zip(a, b)]
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
  assert got.min() > 0.2 and got.max() < 0.95  # not a trivial pair
  np.testing.assert_allclose(sanity.rank_correlation(a, -a), 1.0)
  constant, broken = a.copy(), a.copy()
  constant[2], broken[3, 0, 0] = 5.0, np.nan
  got = sanity.rank_correlation(constant, broken)
  assert np.isnan(got[[2, 3]]).all() and np.isfinite(got[[0, 1, 4, 5]]).all()


def test_summary_pass_fail_and_interval():
  rng = np.random.default_rng(1)
  low_r = rng.uniform(0.1, 0.4, 12)
  high_r = np.r_[rng.uniform(0.92, 0.99, 11), np.nan]
  check = sanity.summarise_correlations([high_r, low_r], (1, 2), resamples=500,
                                        seed=4)
  deepest = check["rank_correlation"][-1]
  assert check["passed"] is True and deepest["depth"] == 2
  assert deepest["mean"] == pytest.approx(low_r.mean())
  assert (deepest["low"], deepest["high"]) == statistics.bootstrap_interval(
      low_r, resamples=500, seed=4)
  assert check["rank_correlation"][0]["images"] == 11
  assert sanity.failure(check) is None
  failed = sanity.summarise_correlations([low_r, high_r], (1, 2), resamples=500)
  assert failed["passed"] is False
  assert "randomisation test" in sanity.failure(failed)
  empty = sanity.summarise_correlations([np.full(3, np.nan)], (1,))
  assert empty["passed"] is None and sanity.failure(empty) is None


# --- A trained tiny classifier: model-independent maps fail, the gradient passes.

def _channel_mean(classifier, x, t, key):
  del classifier, t, key
  return jnp.mean(x, axis=-1)


def _edges(classifier, x, t, key):
  """The image's gradient magnitude (central differences): an edge detector."""
  del classifier, t, key
  g = jnp.mean(x, axis=-1)
  dy = jnp.pad(g[:, 2:] - g[:, :-2], ((0, 0), (1, 1), (0, 0)))
  dx = jnp.pad(g[:, :, 2:] - g[:, :, :-2], ((0, 0), (0, 0), (1, 1)))
  return jnp.sqrt(dx ** 2 + dy ** 2)


@pytest.fixture(scope="module")
def trained(tiny_data):
  data_dir = tiny_data("tiny_boxes")
  clf = eval_util._train_classifier(data_dir, SIZE)  # pylint: disable=protected-access
  data = tfds.as_numpy(tfds.builder("tiny_boxes", data_dir=data_dir).as_dataset(
      split="test", batch_size=-1))
  images = jax.image.resize(data["image"][:16].astype(np.float32) / 255,
                            (16, SIZE, SIZE, 3), "bilinear")
  return clf, np.asarray(images)


def test_model_independent_maps_fail_and_the_gradient_passes(trained):
  clf, images = trained
  methods = [protocol.EvalMethod("channel_mean", _channel_mean),
             protocol.EvalMethod("edges", _edges),
             protocol.EvalMethod("vgrad", explainers.bind("vgrad"))]
  checks = sanity.randomisation_checks(methods, clf, images, seed=0,
                                       resamples=1_000)
  assert checks["levels"] == [list(TINY_ORDER[:d]) for d in sanity.DEPTHS]
  assert checks["levels"][-1] == list(TINY_ORDER)  # the whole classifier
  assert checks["images"] == 16 and checks["threshold"] == sanity.THRESHOLD
  got = {name: [level["mean"] for level in c["rank_correlation"]]
         for name, c in checks["methods"].items()}
  print("mean rank correlations per depth", sanity.DEPTHS, json.dumps(got))
  for name in ("channel_mean", "edges"):
    assert checks["methods"][name]["passed"] is False, got
    np.testing.assert_allclose(got[name], 1.0)
    assert "randomisation test" in sanity.failure(checks["methods"][name])
  assert checks["methods"]["vgrad"]["passed"] is True, got
  assert got["vgrad"][-1] < sanity.THRESHOLD
  # The same numbers again (seeded keys and bootstrap).
  again = sanity.randomisation_checks(methods[2:], clf, images, seed=0,
                                      resamples=1_000)
  assert again["methods"]["vgrad"] == checks["methods"]["vgrad"]


def test_a_failed_method_is_flagged_and_not_ranked():
  n = 3
  def arrays(mf):
    a = {name: np.full(n, 0.5) for name in scoring.names()}
    a.update(curve=np.zeros((n, 3)), finite=np.ones(n, bool),
             faithfulness=np.asarray(mf, np.float64),
             explainability=np.asarray(mf, np.float64) / 2,
             map_spread=np.full(n, 0.3), map_mean=np.full(n, 0.4),
             faithfulness_untied=np.full(n, np.nan), seconds=1.0,
             rows_processed=n)
    return a
  per_method = {"dre": arrays([60, 50, 40]), "vgrad": arrays([20, 30, 45]),
                "gcam": arrays([90, 80, 70])}
  common = {"index": np.arange(n), "target": np.zeros(n, int),
            "label": np.zeros(n, int)}
  failing = sanity.summarise_correlations([np.full(4, 0.97)] * 3, (1, 2, 3),
                                          resamples=100)
  passing = sanity.summarise_correlations([np.full(4, 0.2)] * 3, (1, 2, 3),
                                          resamples=100)
  # Constant maps under the fully randomised classifier: no correlation.
  undecided = sanity.summarise_correlations(
      [np.full(4, 0.3), np.full(4, 0.3), np.full(4, np.nan)], (1, 2, 3),
      resamples=100)
  assert undecided["passed"] is None
  checks = {"images": 4, "levels": [["fc"], ["fc", "b"], ["fc", "b", "a"]],
            "threshold": sanity.THRESHOLD, "measure": sanity.MEASURE, "seed": 0,
            "methods": {"gcam": failing, "dre": passing, "vgrad": undecided}}
  plain, _ = results.summarise(per_method, common, labels_match=True,
                               resamples=100)
  summary, _ = results.summarise(per_method, common, labels_match=True,
                                 resamples=100, sanity_checks=checks)
  assert "sanity" not in plain and "sanity" not in plain["methods"]["gcam"]
  assert plain["methods"]["gcam"]["collapsed"] is None
  assert plain["methods"]["gcam"]["pools"]["all"]["faithfulness_normalised_rank"] == 1
  gcam = summary["methods"]["gcam"]
  assert "randomisation test" in gcam["collapsed"]
  assert gcam["pools"] == {} and gcam["faithfulness_normalised"] is None
  assert gcam["sanity"] == failing and summary["methods"]["dre"]["sanity"] == passing
  assert summary["methods"]["vgrad"]["collapsed"] is None
  assert summary["pools"][0]["collapsed"] == ["gcam"]
  assert summary["methods"]["dre"]["pools"]["all"]["faithfulness_normalised_rank"] == 1
  assert summary["sanity"]["levels"] == checks["levels"]
  assert "methods" not in summary["sanity"]
  full = {**summary, "protocol": {"tie_break": {"sigma": 0.0, "weight": 0.0},
                                  "num_steps": 8},
          "arch": "tiny_cnn", "dataset": "d", "split": "s", "num_images": n,
          "image_size": SIZE, "sample": {"seed": 0}}
  md = tables.render([full])
  assert "Sanity: model-parameter randomisation test" in md
  assert "| GCAM (collapsed) | 0.97 / 0.97 / 0.97 [0.97, 0.97] FAIL |" in md
  assert "0.20 / 0.20 / 0.20 [0.20, 0.20] pass" in md
  assert "| VGrad | 0.30 / 0.30 / - inconclusive |" in md
  assert "the top 1 down to fc, the top 2 down to b, the top 3 down to a" in md
  assert "Sanity" not in tables.render([{k: v for k, v in full.items()
                                         if k != "sanity"}])


@pytest.mark.slow
def test_evaluate_writes_the_check_and_flags_a_failing_method(tmp_path):
  from dre_jax.evaluation import runner  # pylint: disable=import-outside-toplevel
  import util  # pylint: disable=import-outside-toplevel
  workdir, config_path = eval_util.make_workdir(str(tmp_path))
  config = util.load_config_file(config_path)
  config.eval.methods = "dre,vgrad"
  config.eval.num_images = 8
  config.eval.sanity_images = 8
  config.eval.bootstrap_resamples = 200
  plan = runner.plan(workdir, config, log=lambda _: None)
  plan.methods.append(protocol.EvalMethod("edges", _edges))
  out = runner.run_plan(plan, progress=False, log=lambda _: None)
  with open(os.path.join(workdir, "eval", "results.json")) as f:
    saved = json.load(f)
  assert saved["sanity"]["images"] == 8
  assert saved["sanity"]["levels"][0] == ["fc"]
  methods = saved["methods"]
  print({m: [l["mean"] for l in methods[m]["sanity"]["rank_correlation"]]
         for m in methods})
  assert methods["edges"]["sanity"]["passed"] is False
  assert "randomisation test" in methods["edges"]["collapsed"]
  assert methods["edges"]["pools"] == {}
  assert methods["vgrad"]["sanity"]["passed"] is True
  assert methods["vgrad"]["collapsed"] is None
  for m in methods.values():
    assert len(m["sanity"]["rank_correlation"]) == len(sanity.DEPTHS)
  assert out["sanity"] == saved["sanity"]
  md = open(os.path.join(workdir, "eval", "tables.md")).read()
  assert "Sanity: model-parameter randomisation test" in md
