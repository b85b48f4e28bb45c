"""evaluate() over batches and the figure writer, on the tiny CNN."""

import jax
import numpy as np

from dre_jax import evaluation
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE


def test_evaluate_counts_valid_images_and_writes_a_figure(tmp_path):
  dre = DRE.create("tiny_cnn", num_classes=10)
  cls_vars = Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10,
                             image_size=64)
  gen_vars = dre.init_generator(jax.random.key(1), cls_vars, 64)
  rng = np.random.default_rng(0)
  box = np.zeros((3, 64, 64), np.float32)
  box[:, 10:40, 20:50] = 1
  batches = [{"image": rng.random((3, 64, 64, 3), np.float32), "box_mask": box,
              "valid": np.array([True, True, False])} for _ in range(2)]
  seen = []
  result = evaluation.evaluate(dre, cls_vars, gen_vars, batches, num_steps=4,
                               progress=seen.append)
  assert seen == [1, 2]
  assert result["num_images"] == 4
  assert 0 <= result["faithfulness"] <= 100 and 0 <= result["explainability"] <= 100
  assert len(result["mean_curve"]) == 5
  first = result["first_batch"]
  assert first["masks"].shape == (2, 64, 64)
  path = tmp_path / "fig.png"
  evaluation.save_figure(str(path), first["images"], first["masks"],
                         box_masks=first["box_masks"])
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
