"""The evaluation's per-image metrics, declared once (paper Sec. 4.1-4.2).

`METRICS` is the table. Each `Metric` is one per-image array of a method's
results: how it is computed from one batch of maps (`Batch`), whether it needs
the box masks, whether it is NaN where the map is not finite, how a method's
images are summarised into results.json, and where it is shown (a column of
evaluate.py's printed table, a table of tables.md). Everything else derives
from the table: the protocol's scoring and its shard files, the cache key,
`results.summarise`, `tables.render` and `tables.summary_lines`. A new metric
is one entry here.

    arrays = score(classifier, images, maps, target, box_mask, protocol=p)

computes every metric of one batch (numpy, NaN where it does not apply);
`compute` is its jittable part and `mask_nonfinite` the rest.

The metrics (`dre_jax.metrics`): the insertion curve Q_0..Q_m and M_F
(Eq. 10) with the tie-breaker, M_F normalised across methods (Tables 3 and 5),
M_E (Eq. 11) where the batch has box masks, the maps' skewness (moment and
median coefficients), the tie-breaker's effect (M_F without it, on the first
`tie_break_effect_images` images: the batches the protocol marks `untied`),
the share of tied pixels, the map's spread and mean (what
`sanity.collapse` reads) and whether the map is finite.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax import metrics

FINITE = "finite"  # the metric that says whether a map is finite (masks the others)


@dataclasses.dataclass(frozen=True)
class Column:
  """A column of evaluate.py's printed table: a results key, its header,
  width and decimals."""

  key: str
  label: str
  width: int
  digits: int = 2


@dataclasses.dataclass(frozen=True)
class Table:
  """A table of tables.md (methods by classifiers).

  key: the results key shown ("a.b": key b of the dict under a); paren: a
  second key shown in parentheses; digits: decimals; mean: a MEAN column per
  dataset with several classifiers.
  """

  title: str
  key: str
  paren: str | None = None
  digits: int = 2
  mean: bool = True


class Batch:
  """One batch of maps as the metrics read it (inside jit or eagerly).

  classifier: has `probability(images, target)`; images [N, H, W, 3] in
  [0, 1]; saliency [N, H, W]; target [N] the explained classes; box_mask
  [N, H, W] or None; protocol: num_steps, steps_per_call, tie_break (a
  `protocol.Protocol`); untied: also measure without the tie-breaker.
  """

  def __init__(self, classifier, images, saliency, target, box_mask, protocol,
               untied: bool):
    self.classifier, self.images, self.saliency = classifier, images, saliency
    self.target, self.box_mask = target, box_mask
    self.protocol, self.untied = protocol, untied
    self.tie_break = protocol.tie_break
    self._curves: dict[metrics.TieBreak, jnp.ndarray] = {}

  def curve(self, tie_break: metrics.TieBreak | None = None) -> jnp.ndarray:
    """The insertion curve Q_0..Q_m (Eq. 10), [N, m + 1]: computed once per
    tie-breaker (default the protocol's)."""
    tie_break = self.tie_break if tie_break is None else tie_break
    if tie_break not in self._curves:
      self._curves[tie_break] = metrics.insertion_curve(
          self.classifier.probability, self.images, self.saliency, self.target,
          num_steps=self.protocol.num_steps,
          steps_per_call=self.protocol.steps_per_call, tie_break=tie_break)
    return self._curves[tie_break]


def mean(values) -> float | None:
  """The mean of the finite values (float64); None if there are none."""
  values = np.asarray(values, np.float64)
  ok = np.isfinite(values)
  return float(values[ok].mean()) if ok.any() else None


def _mean_of(name: str, a: dict[str, Any]) -> dict[str, Any]:
  return {name: mean(a[name])}


def _mean_curve(name: str, a: dict[str, Any]) -> dict[str, Any]:
  curves = a[name][a[FINITE].astype(bool)]
  return {"mean_curve": curves.mean(axis=0).tolist() if len(curves) else None}


def _tie_break_effect(name: str, a: dict[str, Any]) -> dict[str, Any]:
  untied = np.isfinite(a[name])
  effect = None
  if untied.any():
    with_tb = float(np.mean(a["faithfulness"][untied]))
    without = float(np.mean(a[name][untied]))
    effect = {"images": int(untied.sum()), "with": with_tb,
              "without": without, "delta": with_tb - without}
  return {"tie_break_effect": effect}


def _finite_counts(name: str, a: dict[str, Any]) -> dict[str, Any]:
  finite = a[name].astype(bool)
  return {"images": int(finite.sum()), "nonfinite_maps": int((~finite).sum())}


@dataclasses.dataclass(frozen=True)
class Metric:
  """One per-image metric.

  name: its key in shard files, per_image.npz ("<method>/<name>") and, with
    the default summary, results.json.
  compute: Batch -> [N, ...] array, or None where it is not measured on this
    batch (then NaN).
  needs_boxes: measured only on batches with box masks (else NaN).
  nan_if_nonfinite: NaN on images whose map is not finite.
  summary: (name, a method's arrays) -> its entries in results.json's
    methods[<method>]; default the mean of the finite values.
  normalised: also min-max normalised per image across the evaluated methods
    ("<name>_normalised", per image and its mean; Sec. 4.2.1).
  columns: its columns in evaluate.py's printed table.
  table: its table in tables.md.
  """

  name: str
  compute: Callable[[Batch], jnp.ndarray | None]
  needs_boxes: bool = False
  nan_if_nonfinite: bool = True
  summary: Callable[[str, dict[str, Any]], dict[str, Any]] = _mean_of
  normalised: bool = False
  columns: tuple[Column, ...] = ()
  table: Table | None = None


METRICS: tuple[Metric, ...] = (
    Metric("curve", lambda b: b.curve(), summary=_mean_curve),
    Metric("faithfulness", lambda b: metrics.faithfulness(b.curve()),
           normalised=True,
           columns=(Column("faithfulness", "M_F", 7),
                    Column("faithfulness_normalised", "M_F norm", 8)),
           table=Table("Tables 3 and 5: faithfulness M_F, normalised across "
                       "methods (raw M_F in parentheses)",
                       "faithfulness_normalised", paren="faithfulness")),
    Metric("explainability",
           lambda b: metrics.explainability(b.saliency, b.box_mask, b.tie_break),
           needs_boxes=True, columns=(Column("explainability", "M_E", 7),),
           table=Table("Table 4: explainability M_E", "explainability")),
    Metric("skewness", lambda b: metrics.skewness(b.saliency),
           columns=(Column("skewness", "skew", 6),),
           table=Table("Skewness of the maps (Pearson's moment coefficient; "
                       "median coefficient in parentheses)", "skewness",
                       paren="median_skewness")),
    Metric("median_skewness", lambda b: metrics.median_skewness(b.saliency)),
    Metric("faithfulness_untied",
           lambda b: (metrics.faithfulness(b.curve(metrics.NO_TIE_BREAK))
                      if b.untied else None),
           summary=_tie_break_effect,
           table=Table("The tie-breaker: M_F with minus without it (on the "
                       "first images; share of tied pixels in parentheses)",
                       "tie_break_effect.delta", paren="tied_fraction",
                       digits=3, mean=False)),
    Metric("tied_fraction", lambda b: metrics.tied_fraction(b.saliency),
           nan_if_nonfinite=False),
    Metric("map_spread", lambda b: metrics.spread(b.saliency)),
    Metric("map_mean", lambda b: jnp.mean(b.saliency, axis=(1, 2))),
    Metric(FINITE, lambda b: jnp.all(jnp.isfinite(b.saliency), axis=(1, 2)),
           nan_if_nonfinite=False, summary=_finite_counts),
)


def names() -> tuple[str, ...]:
  """The metrics' names, in the table's order."""
  return tuple(m.name for m in METRICS)


def compute(classifier, images, saliency, target, box_mask=None, *, protocol,
            untied: bool = False) -> dict[str, jnp.ndarray]:
  """Every metric of one batch of maps (jittable; `protocol` and `untied`
  static): {name: [N, ...]}, NaN where a metric is not measured. The arguments
  are those of `Batch`."""
  batch = Batch(classifier, images, saliency, target, box_mask, protocol, untied)
  out = {}
  for m in METRICS:
    value = None if m.needs_boxes and box_mask is None else m.compute(batch)
    out[m.name] = (jnp.full(saliency.shape[0], jnp.nan, jnp.float32)
                   if value is None else value)
  return out


def mask_nonfinite(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The metrics marked `nan_if_nonfinite` set to NaN on images whose map is
  not finite (host arrays of `compute`, any number of batches)."""
  bad = ~np.asarray(arrays[FINITE]).astype(bool)
  out = dict(arrays)
  for m in METRICS:
    if m.nan_if_nonfinite:
      value = np.asarray(arrays[m.name])
      out[m.name] = np.where(bad.reshape(bad.shape + (1,) * (value.ndim - 1)),
                             np.nan, value)
  return out


def score(classifier, images, saliency, target, box_mask=None, *, protocol,
          untied: bool = False) -> dict[str, np.ndarray]:
  """`compute` then `mask_nonfinite`: every metric of one batch, as numpy."""
  return mask_nonfinite(jax.device_get(compute(
      classifier, images, saliency, target, box_mask, protocol=protocol,
      untied=untied)))


def summarise_method(arrays: dict[str, Any]) -> dict[str, Any]:
  """One method's results.json entries of every metric (`Metric.summary`)."""
  out: dict[str, Any] = {}
  for m in METRICS:
    out.update(m.summary(m.name, arrays))
  return out


def normalised(per_method: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
  """{"<metric>_normalised": [methods, N]} of every `normalised` metric: min-max
  per image across the methods (Sec. 4.2.1; all NaN with one method)."""
  out = {}
  for m in METRICS:
    if m.normalised:
      raw = np.stack([a[m.name] for a in per_method.values()])
      out[f"{m.name}_normalised"] = (
          metrics.normalise_across_methods(raw) if len(per_method) > 1
          else np.full_like(raw, np.nan))
  return out
