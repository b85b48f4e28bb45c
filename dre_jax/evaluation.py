"""Evaluating a trained DRE on a dataset: the paper's metrics and mask figures.

`evaluate(...)` runs the explanation, the insertion curve (Eq. 10) and, where
the batches carry box masks, the explainability metric (Eq. 11) over batches
from `dre_jax.data`; `save_figure(...)` draws images, masks and overlays.
"""

from __future__ import annotations

import io
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax import atomic, controller, metrics
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE


def make_eval_step(dre: DRE, num_steps: int = 32, steps_per_call: int = 4):
  """A jitted (classifier, generator_variables, images, box_masks) -> dict."""

  def step(classifier, gen_vars, images, box_masks):
    masks, target = dre.explain(classifier, gen_vars, images)
    curve = metrics.insertion_curve(classifier.probability, images, masks, target,
                                    num_steps=num_steps, steps_per_call=steps_per_call)
    return {"masks": masks, "target": target, "curve": curve,
            "faithfulness": metrics.faithfulness(curve),
            "explainability": metrics.explainability(masks, box_masks)}

  return jax.jit(step)


def evaluate(dre: DRE, classifier: Classifier, generator_variables,
             batches: Iterable[dict], *, num_steps: int = 32, steps_per_call: int = 4,
             max_batches: int | None = None, progress=None) -> dict:
  """Mean M_F, M_E (where boxes exist) and mask skewness over the batches.

  batches: dicts with "image" [B, H, W, 3] in [0, 1], optionally "box_mask"
  [B, H, W] and "valid" [B] (True for real examples, False for padding).

  Returns a dict of floats plus "first_batch": the arrays of the first batch
  (images, masks, target, box masks) for figures.
  """
  step = make_eval_step(dre, num_steps, steps_per_call)
  sums = {"faithfulness": 0.0, "explainability": 0.0, "skewness": 0.0}
  counts = {"faithfulness": 0, "explainability": 0, "skewness": 0}
  curve_sum, first = None, None
  for i, batch in enumerate(batches):
    if max_batches is not None and i >= max_batches:
      break
    images = jnp.asarray(batch["image"])
    has_boxes = "box_mask" in batch
    boxes = jnp.asarray(batch["box_mask"]) if has_boxes else jnp.ones(images.shape[:3])
    valid = np.asarray(batch.get("valid", np.ones(images.shape[0])), bool)
    out = jax.device_get(step(classifier, generator_variables, images, boxes))
    per_image = {"faithfulness": out["faithfulness"],
                 "skewness": controller.skewness(out["masks"])}
    if has_boxes:
      per_image["explainability"] = out["explainability"]
    for name, values in per_image.items():
      ok = valid & np.isfinite(values)
      sums[name] += float(values[ok].sum())
      counts[name] += int(ok.sum())
    curve = out["curve"][valid].sum(axis=0)
    curve_sum = curve if curve_sum is None else curve_sum + curve
    if first is None:
      first = {"images": np.asarray(images)[valid], "masks": out["masks"][valid],
               "target": out["target"][valid],
               "labels": np.asarray(batch.get("label", out["target"]))[valid],
               "box_masks": np.asarray(boxes)[valid] if has_boxes else None}
    if progress is not None:
      progress(i + 1)
  if first is None:
    raise ValueError("evaluate() got no batches: is the evaluation split empty?")
  result = {name: sums[name] / counts[name] for name in sums if counts[name]}
  result["num_images"] = counts["faithfulness"]
  result["mean_curve"] = (curve_sum / counts["faithfulness"]).tolist()
  result["first_batch"] = first
  return result


def save_figure(path: str, images: np.ndarray, masks: np.ndarray,
                titles: list[str] | None = None, box_masks: np.ndarray | None = None,
                max_images: int = 8) -> None:
  """Rows of (image, mask, image x mask) as a PNG, written atomically.

  images: [N, H, W, 3] in [0, 1]; masks: [N, H, W] in [0, 1]; box_masks drawn as
  a contour on the image where given.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  n = min(len(images), max_images)
  fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
  for i in range(n):
    ax_img, ax_mask, ax_over = axes[i]
    ax_img.imshow(np.clip(images[i], 0, 1))
    if box_masks is not None:
      ax_img.contour(box_masks[i], levels=[0.5], colors="yellow", linewidths=1)
    ax_img.set_title(titles[i] if titles else "image", fontsize=8)
    ax_mask.imshow(masks[i], cmap="jet", vmin=0, vmax=1)
    ax_mask.set_title(f"DRE mask (skew {controller.skewness(masks[i:i + 1])[0]:.2f})",
                      fontsize=8)
    ax_over.imshow(np.clip(images[i] * masks[i][..., None], 0, 1))
    ax_over.set_title("image x mask", fontsize=8)
    for ax in axes[i]:
      ax.axis("off")
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  atomic.write_atomic(path, buffer.getvalue())
