"""dre_jax.evaluation.estimate: an evaluation's passes and run time."""

import types

import jax
import numpy as np
import pytest

from dre_jax import metrics
from dre_jax.classifier import Classifier
from dre_jax.evaluation import estimate
from dre_jax.evaluation import protocol as protocol_lib


def test_count_passes():
  passes = estimate.count_passes(
      {"vgrad": {}, "smgrad": {"samples": 20}, "dre": {}}, num_images=10,
      num_steps=31, untied_images=4)
  # Scoring: (31 + 1) forwards of half a pass, on 10 + 4 images = 224.
  assert passes == {"vgrad": 1 * 10 + 224, "smgrad": 20 * 10 + 224,
                    "dre": 0.5 * 10 + 224, estimate.PREDICTIONS: 5}
  # Fewer images than the untied ones: each image scored twice at most.
  assert estimate.count_passes({"vgrad": {}}, 3, 1, 100)["vgrad"] == 3 + 1 * 6
  with pytest.raises(TypeError, match="no setting 'sample'"):
    estimate.count_passes({"smgrad": {"sample": 2}}, 1, 1)


def test_seconds_and_the_sample_that_fits():
  est = estimate.Estimate({"vgrad": 234.0, estimate.PREDICTIONS: 6.0},
                          seconds_per_pass=0.5, workers=2, num_images=12,
                          backend="cpu")
  assert est.total_passes == 240 and est.seconds == 60.0
  assert est.images_within(30.0) == 6 and est.images_within(0.1) == 1
  line = est.line()
  assert line.startswith("1 method x 12 images = 240 classifier passes x 500.0 ms")
  assert "/ 2 devices" in line and line.endswith("about 1 min (plus compilation)")


@pytest.mark.parametrize("seconds, text", [
    (20, "20 s"), (95, "2 min"), (3600, "1 h"), (3725, "1 h 2 min"),
    (3 * 86400, "3.0 days")])
def test_duration(seconds, text):
  assert estimate.duration(seconds) == text


def test_for_plan_measures_the_classifier():
  clf = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=4,
                        image_size=32)
  protocol = protocol_lib.Protocol(num_steps=7, tie_break_effect_images=2,
                                   shard_size=2)
  plan = types.SimpleNamespace(
      loaded=types.SimpleNamespace(classifier=clf), image_size=32,
      protocol=protocol, sample=protocol_lib.make_sample(50, 5),
      methods=[types.SimpleNamespace(name="gcam", settings={})])
  est = estimate.for_plan(plan)
  assert est.passes == estimate.count_passes({"gcam": {}}, 5, 7, 2)
  assert est.num_images == 5 and est.workers == 1 and est.backend == "cpu"
  assert 0 < est.seconds_per_pass < 1 and np.isfinite(est.seconds)
  off = protocol_lib.Protocol(num_steps=7, tie_break=metrics.TieBreak(0.0))
  est = estimate.for_plan(types.SimpleNamespace(**{**vars(plan), "protocol": off}))
  assert est.passes == estimate.count_passes({"gcam": {}}, 5, 7, 0)
  est = estimate.for_plan(plan, shards=[1, 2])  # --shards=1,2: images 2-4
  assert est.num_images == 3
  assert est.passes == estimate.count_passes({"gcam": {}}, 3, 7, 0)


def test_images_to_run_counts_the_chosen_shards():
  sample = protocol_lib.make_sample(100, 40)  # shards of 16: 16, 16, 8 images
  assert estimate.images_to_run(sample, 16, 20) == (40, 20)
  assert estimate.images_to_run(sample, 16, 20, shards=[1]) == (16, 4)
  assert estimate.images_to_run(sample, 16, 20, shards=[2, 7]) == (8, 0)
  assert estimate.images_to_run(sample, 16, 20, max_shards=1) == (16, 16)
  assert estimate.images_to_run(sample, 16, 20, shards=[0, 2], max_shards=2) == (16, 16)


def test_shard_limit_is_shared_by_the_estimate_and_the_run():
  sample = protocol_lib.make_sample(100, 40)
  assert sample.shard_limit(16) == 3
  assert sample.shard_limit(16, max_shards=2) == 2
  assert sample.shard_limit(16, max_shards=9) == 3
