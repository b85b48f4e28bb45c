"""The comparison protocol (dre_jax.evaluation) in-process, against references.

* Exact means: M_F recomputed image by image with numpy rankings and the
  classifier alone, M_E with scikit-learn, skewness with scipy, the normalised
  M_F by hand; the runner's shards, batches, padding and sample agree.
* Resume: a run stopped after one shard and continued equals a run in one go,
  bit for bit, for a random method too (its keys depend on method, shard and
  batch only).
* Devices and hosts: 8 simulated CPU devices, and two processes on loopback
  (jax.distributed, gloo), give the same per-image values as 1 device.
* DRE+ (self-based) against a direct numpy reading of Sec. 4.4.1.
"""

import concurrent.futures
import json
import os
import socket
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import average_precision_score

import eval_util
import util
from dre_jax import metrics
from dre_jax import perturbation
from dre_jax.evaluation import cache
from dre_jax.evaluation import protocol

NUM_IMAGES = 20
TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  return eval_util.run_protocol(str(tmp_path_factory.mktemp("cache")), NUM_IMAGES)


def _numpy_faithfulness(clf, images, maps, target, m):
  """Eq. 10 image by image: numpy ranking (stable), the classifier's probability."""
  blurred = np.asarray(perturbation.gaussian_blur(jnp.asarray(images), 10.0, 55))
  out = []
  for n in range(len(images)):
    order = np.argsort(-maps[n].ravel(), kind="stable")
    stack = []
    for i in range(m + 1):
      keep = np.zeros(maps[n].size, np.float32)
      keep[order[:round(i / m * maps[n].size)]] = 1
      keep = keep.reshape(maps[n].shape)[..., None]
      stack.append(images[n] * keep + blurred[n] * (1 - keep))
    q = np.asarray(clf.probability(jnp.asarray(np.stack(stack)),
                                   jnp.full(m + 1, target[n])))
    out.append(100 * q[1:].sum() / m)
  return np.array(out)


def test_exact_means_against_independent_references(reference_run):
  summary, per_image = reference_run
  clf, arrays, methods = eval_util.protocol_inputs(NUM_IMAGES)
  sample = protocol.make_sample(NUM_IMAGES + 7, num_images=NUM_IMAGES, seed=5)
  padded = {k: np.concatenate([v, v[:7]]) for k, v in arrays.items()}
  images = padded["image"][sample.positions]
  boxes = padded["box_mask"][sample.positions]
  np.testing.assert_array_equal(per_image["index"], sample.positions)
  target = np.asarray(clf.logits(jnp.asarray(images))).argmax(-1)
  np.testing.assert_array_equal(per_image["target"], target)
  m = eval_util.PROTOCOL_KW["num_steps"]
  by_name = {meth.name: meth for meth in methods}
  raw = {}
  for name in ("centre", "box"):  # deterministic maps
    maps = np.asarray(by_name[name].explain(clf, jnp.asarray(images), target, None))
    if name == "centre":  # no ties: numpy's ranking is the metric's
      assert summary["methods"]["centre"]["tied_fraction"] == 0.0
      mf = _numpy_faithfulness(clf, images, maps, target, m)
      np.testing.assert_allclose(per_image["centre/faithfulness"], mf, rtol=2e-5)
      np.testing.assert_allclose(summary["methods"]["centre"]["faithfulness"],
                                 mf.mean(), rtol=2e-5)
      skew = scipy.stats.skew(maps.reshape(len(maps), -1).astype(np.float64),
                              axis=1, bias=True)
      np.testing.assert_allclose(summary["methods"]["centre"]["skewness"],
                                 skew.mean(), rtol=1e-4)
      me = [100 * average_precision_score(b.ravel() > 0.5, s.ravel())
            for b, s in zip(boxes, maps)]
      np.testing.assert_allclose(summary["methods"]["centre"]["explainability"],
                                 np.mean(me), rtol=1e-5)
    else:  # ties: the whole sample at once through the metric functions
      curve = metrics.insertion_curve(clf.probability, jnp.asarray(images),
                                      jnp.asarray(maps), jnp.asarray(target),
                                      num_steps=m)
      mf = np.asarray(metrics.faithfulness(curve))
      np.testing.assert_allclose(per_image["box/faithfulness"], mf, rtol=2e-5)
      np.testing.assert_allclose(per_image["box/curve"], np.asarray(curve),
                                 rtol=2e-5, atol=1e-7)
    raw[name] = per_image[f"{name}/faithfulness"]
  raw["random"] = per_image["random/faithfulness"]
  # Normalised M_F: min-max across the three methods, per image, by hand.
  stack = np.stack([raw[n] for n in ("centre", "random", "box")])
  lo, hi = stack.min(0), stack.max(0)
  for i, name in enumerate(("centre", "random", "box")):
    hand = 100 * (stack[i] - lo) / (hi - lo)
    np.testing.assert_allclose(per_image[f"{name}/faithfulness_normalised"], hand,
                               rtol=1e-5)
    np.testing.assert_allclose(summary["methods"][name]["faithfulness_normalised"],
                               hand.mean(), rtol=1e-5)
  assert summary["methods"]["centre"]["images"] == NUM_IMAGES
  # The box map is tied almost everywhere; the tie-breaker ran on shard 0.
  effect = summary["methods"]["box"]["tie_break_effect"]
  assert effect["images"] == eval_util.PROTOCOL_KW["shard_size"]
  assert summary["methods"]["box"]["tied_fraction"] == 1.0
  assert summary["methods"]["centre"]["tie_break_effect"]["delta"] == 0.0


@pytest.mark.slow  # two evaluations
def test_resume_after_a_partial_run_equals_one_run(tmp_path, reference_run):
  cache = str(tmp_path / "cache")
  eval_util.run_protocol(cache, NUM_IMAGES, max_shards=1)
  files = sorted(os.listdir(next(os.path.join(cache, d) for d in os.listdir(cache)
                                 if d.startswith("random-"))))
  assert files == ["shard-00000.npz", "spec.json"]
  summary, per_image = eval_util.run_protocol(cache, NUM_IMAGES)
  ref_summary, ref_per_image = reference_run
  assert set(per_image) == set(ref_per_image)
  for key, value in ref_per_image.items():
    np.testing.assert_array_equal(per_image[key], value, err_msg=key)
  for name, m in ref_summary["methods"].items():
    for key in ("faithfulness", "faithfulness_normalised", "explainability",
                "skewness"):
      assert summary["methods"][name][key] == m[key], (name, key)


@pytest.mark.slow  # two evaluations
def test_changed_settings_use_other_shards(tmp_path):
  cache = str(tmp_path / "cache")
  eval_util.run_protocol(cache, 8)
  eval_util.run_protocol(cache, 8, num_steps=4)
  kinds = sorted(d.split("-")[0] for d in os.listdir(cache))
  assert kinds == ["box", "box", "centre", "centre", "common", "common",
                   "random", "random"]


def test_cache_keys_follow_the_explainer_revision():
  """A method's registered revision (raised when a fix changes its maps) is in
  its cache key, so shards cached before the fix are not reused; xpert is at 6
  (its margin, TorchRay's smoothing, the smooth max by blocks, its derivative,
  the area term by selection)."""
  from dre_jax import explainers
  sample = protocol.Sample(positions=np.arange(4), description={"split": "test"})
  proto = protocol.Protocol()
  def key(revision):
    m = protocol.EvalMethod(name="xpert", explain=None,
                            settings={"iterations": 300}, revision=revision)
    return cache.cache_dirs("/c", [m], "clf", sample, proto)["xpert"]
  assert key(1) != key(2) and key(2) == key(2)
  assert explainers.method("xpert").revision == 6
  assert explainers.method("gcam").revision == 1


PARALLEL_SCRIPT = r"""
import json, sys
import jax
from dre_jax import parallel
if len(sys.argv) > 2:
  parallel.initialize(f"127.0.0.1:{sys.argv[2]}", 2, int(sys.argv[3]))
import eval_util
summary, per_image = eval_util.run_protocol(sys.argv[1], %d)
if jax.process_index() == 0:
  print("RESULT", json.dumps({"devices": jax.device_count(),
                              "processes": jax.process_count(),
                              "summary": summary,
                              "per_image": {k: v.tolist() for k, v in per_image.items()}}))
""" % NUM_IMAGES


def _script(tmp_path, *args, devices=1):
  result = util.run_cli([sys.executable, "-c", PARALLEL_SCRIPT, *args],
                        num_devices=devices, cwd=str(tmp_path), check=False,
                        env={"PYTHONPATH": os.pathsep.join([TESTS, util.REPO])})
  assert result.returncode == 0, result.stderr[-5000:]
  lines = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
  return json.loads(lines[0][7:]) if lines else None


def _assert_same(run, reference_run):
  # Float32 sums in another order: the third moment of a map (skewness)
  # cancels more digits than the rest.
  rtol = lambda key: 1e-4 if "skewness" in key else 1e-5  # noqa: E731
  summary, per_image = reference_run
  for key, value in per_image.items():
    np.testing.assert_allclose(np.asarray(run["per_image"][key], np.float64),
                               np.asarray(value, np.float64), rtol=rtol(key),
                               atol=1e-6, err_msg=key)
  for name, m in summary["methods"].items():
    for key in ("faithfulness", "faithfulness_normalised", "explainability",
                "skewness"):
      np.testing.assert_allclose(run["summary"]["methods"][name][key], m[key],
                                 rtol=rtol(key), err_msg=f"{name} {key}")


@pytest.mark.slow  # 8 simulated devices in a subprocess
def test_eight_devices_give_the_same_values_as_one(tmp_path, reference_run):
  run = _script(tmp_path, str(tmp_path / "cache"), devices=8)
  assert run["devices"] == 8
  _assert_same(run, reference_run)


@pytest.mark.slow  # two processes
def test_two_processes_give_the_same_values_as_one(tmp_path, reference_run):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
  cache = str(tmp_path / "cache")
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    runs = [pool.submit(_script, tmp_path, cache, port, str(i)) for i in range(2)]
    results = [r.result() for r in runs]
  assert results[1] is None  # only process 0 reports (and writes)
  assert (results[0]["devices"], results[0]["processes"]) == (2, 2)
  _assert_same(results[0], reference_run)


def test_dre_plus_self_follows_sec_4_4_1():
  from dre_jax.explainers import dre_plus
  clf, arrays, _ = eval_util.protocol_inputs(2)
  images = jnp.asarray(arrays["image"])
  num_pixels = images.shape[1] * images.shape[2]  # distinct scores: no ties
  masks = jnp.stack([jax.random.permutation(jax.random.key(i), num_pixels)
                     for i in range(2)]).reshape(images.shape[:3]) / num_pixels
  target = jnp.argmax(clf.logits(images), -1)
  m = 8
  weights = np.asarray(dre_plus.self_based_weights(clf.probability, images, masks,
                                                   target, num_steps=m))
  curve = np.asarray(metrics.insertion_curve(clf.probability, images, masks, target,
                                             num_steps=m))
  for n in range(2):
    q = np.maximum.accumulate(curve[n])            # Q_i = max_{j <= i} Q_j
    order = np.argsort(-np.asarray(masks[n]).ravel(), kind="stable")
    rank = np.empty(num_pixels, int)
    rank[order] = np.arange(num_pixels)
    # Pixel of rank r is inserted at fraction (r + 1) / P: interpolate Q there.
    q_k = np.interp((rank + 1) / num_pixels, np.linspace(0, 1, m + 1), q)
    np.testing.assert_allclose(weights[n].ravel(), q.max() - q_k, atol=2e-6)
  assert weights.min() >= -1e-7


@pytest.mark.parametrize("make", [
    lambda d: d.uniform(-1.0, 3.0), lambda d: d.skew_normal(-5.0),
    lambda d: d.skew_normal(20.0), lambda d: d.normal_mixture(0.3, (0.0, 4.0)),
    lambda d: d.normal_mixture(0.9, (0.0, 16.0))], ids=[
        "uniform", "skewnormal-5", "skewnormal20", "mixture4", "mixture16"])
def test_appendix_b_densities_are_the_derivative_of_the_exact_cdf(make):
  """Eqs. 26, 29, 32 (one formula) against d/dz of P(z' <= z) = F_x(phi^-1(z) s + E[x]),
  and the controller applied to samples follows that CDF (KS test)."""
  from dre_jax import controller
  from dre_jax.evaluation import distributions as d
  dist = make(d)
  exact = {  # the input's CDF, from scipy (or the mixture's weighted sum)
      "U(-1, 3)": scipy.stats.uniform(-1, 4).cdf,
      "skew normal a=-5": scipy.stats.skewnorm(-5).cdf,
      "skew normal a=20": scipy.stats.skewnorm(20).cdf,
      "mixture r1=0.3, mu2=4": lambda x: 0.3 * scipy.stats.norm.cdf(x)
      + 0.7 * scipy.stats.norm.cdf(x, 4),
      "mixture r1=0.9, mu2=16": lambda x: 0.9 * scipy.stats.norm.cdf(x)
      + 0.1 * scipy.stats.norm.cdf(x, 16)}[dist.name]
  cdf_z = lambda z: exact(controller.inverse_skew_transform(z) * dist.std + dist.mean)  # noqa: E731
  z = np.linspace(0.02, 0.98, 97)
  h = 1e-6
  numeric = (cdf_z(z + h) - cdf_z(z - h)) / (2 * h)
  np.testing.assert_allclose(d.controlled_density(dist, z), numeric, rtol=1e-4,
                             atol=1e-6)
  samples = d.apply_controller(dist.sample(np.random.default_rng(0), 50_000))
  assert scipy.stats.kstest(samples, cdf_z).pvalue > 1e-3


def test_eq8_is_the_standard_normal_case():
  from dre_jax import controller
  from dre_jax.evaluation import distributions as d
  z = np.linspace(0.01, 0.99, 50)
  for eta, h in ((0.5, 2.5), (1.5, 2.5), (2.5, 1.0)):
    np.testing.assert_allclose(d.controlled_density(d.standard_normal(), z, eta, h),
                               controller.controlled_pdf(z, eta, h), rtol=1e-12)


@pytest.mark.slow  # two evaluations
def test_classifier_constants_change_no_number(tmp_path):
  """The classifier compiled into the programs (the CPU default) or passed as an
  argument: the same per-image numbers to the last bit, a gradient method too."""
  from dre_jax import explainers
  from dre_jax.evaluation import cache, protocol
  clf, arrays, methods = eval_util.protocol_inputs(8)
  methods = methods + [protocol.EvalMethod("vgrad", explainers.bind("vgrad"))]
  sample = protocol.make_sample(8, num_images=8, seed=5)
  p = protocol.Protocol(**{**eval_util.PROTOCOL_KW, "shard_size": 8})
  names = [m.name for m in methods]
  got = {}
  for which in (True, False):
    directory = str(tmp_path / str(which))
    dirs = protocol.run(clf, methods, sample, protocol.array_source(arrays), directory,
                        p, progress=False, constants=which)
    got[which], _ = cache.collect(dirs, names, sample, p)
  for name in names:
    for key, value in got[True][name].items():
      if key == "seconds":  # timing
        continue
      np.testing.assert_array_equal(value, got[False][name][key],
                                    err_msg=f"{name} {key}")



def test_jit_for_compiles_the_classifier_in_and_takes_another():
  from dre_jax import classifier as classifier_lib
  from dre_jax.classifier import Classifier
  clf, arrays, _ = eval_util.protocol_inputs(2)
  other = Classifier.init("tiny_cnn", jax.random.key(7), num_classes=4,
                          image_size=arrays["image"].shape[1])
  x = jnp.asarray(arrays["image"])
  fn = classifier_lib.jit_for(lambda c, x: c.logits(x), clf, constants=True)
  # The compiled-in classifier's weights are not inputs of the program: x is the only one.
  assert len(jax.tree.leaves(fn.closed.lower(x).args_info)) == 1
  assert len(jax.tree.leaves(jax.jit(lambda c, x: c.logits(x)).lower(clf, x).args_info)) > 1
  np.testing.assert_array_equal(fn(clf, x), clf.logits(x))
  np.testing.assert_array_equal(fn(other, x), other.logits(x))
  assert not np.allclose(fn(other, x), fn(clf, x))
