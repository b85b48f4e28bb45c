"""Checks that a method's maps say something before it is ranked.

A method has collapsed when, on more than half of its images with finite
maps, the map is near-constant (`metrics.spread`, the standard deviation over
the largest |score|, below `NEAR_CONSTANT`), or, for a method whose output is
a mask on an absolute scale (`explainers.method(name).output == "mask"`), the
mask's mean is outside `MASK_MEAN_RANGE` (all kept or all removed: a
saturated generator). A collapsed method is flagged in results.json and
tables.md and left out of the normalisation pools and the ranks
(`dre_jax.evaluation.results`).

A method also fails when its maps do not depend on the classifier: the
model-parameter randomisation test of Adebayo et al. (NeurIPS 2018, Sec. 3.1;
`randomisation_checks`) re-initialises the classifier's top modules in a
cascade (`DEPTHS`, `top_modules`, `cascade`), explains the same images
under each randomised classifier and scores the Spearman rank correlation of
|map| with the trained classifier's maps (`rank_correlation`). A mean
correlation above `THRESHOLD` at the deepest level is a failure (`failure`),
flagged and left out of the ranks exactly as a collapse.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from dre_jax.classifier import Classifier
from dre_jax.evaluation import statistics

NEAR_CONSTANT = 1e-6
MASK_MEAN_RANGE = (0.02, 0.98)
MOST = 0.5  # collapsed when more than this share of the images is
RULE = (f"collapsed: on more than {MOST:.0%} of the images with finite maps, "
        f"std < {NEAR_CONSTANT:g} x max |score|, or for a mask output a mean "
        f"outside {MASK_MEAN_RANGE}")


def output_kind(name: str) -> str:
  """The registry's `Method.output` ("mask" or "attribution"); "attribution"
  for a method that is not registered (no absolute scale assumed)."""
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  return explainers.method(name).output if name in explainers.names() else "attribution"


def collapse(arrays: dict[str, Any], output: str) -> str | None:
  """Why a method's maps have collapsed (one line), or None.

  arrays: the method's per-image metrics with `map_spread` and `map_mean`
  (NaN where the map is not finite); output: "mask" or "attribution".
  """
  spread = np.asarray(arrays["map_spread"], np.float64)
  finite = np.isfinite(spread)
  n = int(finite.sum())
  if n == 0:
    return "no finite map"
  flat = int(np.sum(spread[finite] < NEAR_CONSTANT))
  if flat > MOST * n:
    return (f"near-constant maps on {flat} of {n} images (std < "
            f"{NEAR_CONSTANT:g} x max |score|)")
  if output == "mask":
    mean = np.asarray(arrays["map_mean"], np.float64)[finite]
    lo, hi = MASK_MEAN_RANGE
    outside = int(np.sum((mean <= lo) | (mean >= hi)))
    if outside > MOST * n:
      return (f"mask mean outside ({lo:g}, {hi:g}) on {outside} of {n} images "
              f"(mean {mean.mean():.3f})")
  return None


# --- The model-parameter randomisation test (Adebayo et al., "Sanity Checks
# for Saliency Maps", NeurIPS 2018, Sec. 3.1).

# A method fails when the mean rank correlation of its maps with those of the
# classifier randomised at the deepest level of `DEPTHS` (every module) is
# above this.
# Adebayo et al. report the model-independent baselines (an edge detector,
# Guided BackProp) staying near 1 under cascading randomisation and the
# gradient falling far below; a map that keeps more than 0.9 of its ranking
# after every weight of the classifier has been replaced by a random one
# describes the image, not the classifier. 0.9 flags only such methods; the reported
# correlations allow a stricter reading.
THRESHOLD = 0.9
# The cascade: re-initialise the top 1, 2, 3 modules (`top_modules`), i.e.
# the logits, then the logits and the last block, then one block more, then
# every module (None), where Adebayo et al.'s cascade ends. The last level
# decides: DRE's and MGnet's generators read taps at strides 4 to 32, so
# randomising only above the last tap leaves the finer taps (and maps that
# rest on them) as trained.
DEPTHS = (1, 2, 3, None)
MEASURE = ("Spearman rank correlation of |map| (Adebayo et al. 2018, the "
           "absolute-value variant) between the maps under the trained and "
           "the randomised classifier, per image, over the pixels where "
           "either map is nonzero")


def top_modules(classifier: Classifier) -> tuple[str, ...]:
  """The classifier's top-level modules that hold variables, from the output down.

  "Top-level" is a key of the Flax variables (`variables["params"]`, ...):
  ResNets' `fc`, `layer4.2`, `layer4.1`, ...; VGG19's `fc8`, `fc7`, `fc6`,
  `conv5_4`, ...; tiny_cnn's `fc`, `bn4`, `conv4`, `bn3`, ... Their order is
  that of the forward pass (the first call of each, recorded with
  `flax.linen.intercept_methods` on an abstract evaluation at the
  architecture's input size), reversed; the first is the output layer
  (`ClassifierSpec.head_name`), else a ValueError.
  """
  called: list[str] = []

  def record(next_fun, args, kwargs, context):
    path = context.module.path
    if len(path) == 1 and path[0] not in called:
      called.append(path[0])
    return next_fun(*args, **kwargs)

  size = classifier.spec.input_size
  with nn.intercept_methods(record):
    jax.eval_shape(lambda v: classifier.module.apply(
        v, jnp.zeros((1, size, size, 3)), train=False), classifier.variables)
  held = {name for tree in classifier.variables.values() for name in tree}
  order = tuple(reversed([name for name in called if name in held]))
  if not order or order[0] != classifier.spec.head_name:
    raise ValueError(f"{classifier.spec.name}: the last module of the forward "
                     f"pass is {order[:1]}, not the output layer "
                     f"{classifier.spec.head_name!r}")
  return order


def cascade(classifier: Classifier, key: jax.Array,
            depths: Sequence[int | None]) -> list[Classifier]:
  """The classifier with its top `depth` modules (`top_modules`; None: all)
  re-initialised, one per depth.

  Every collection of those modules (params and batch statistics) takes the
  values of `classifier.module.init(key, ...)` (one initialisation for all
  depths, at the architecture's input size): the architecture's own
  initialisers, as Adebayo et al. re-initialise. Every other variable is the
  trained one, unchanged. The same key gives the same classifiers, and a
  module's new values are the same at every depth, so the levels cascade.
  """
  order = top_modules(classifier)
  size = classifier.spec.input_size
  fresh = classifier.module.init(key, jnp.zeros((1, size, size, 3)),
                                 train=False)
  if jax.tree.map(jnp.shape, fresh) != jax.tree.map(jnp.shape,
                                                    classifier.variables):
    raise ValueError(f"{classifier.spec.name} initialised at {size} px has "
                     "other variable shapes than the classifier's")
  out = []
  for depth in depths:
    names = order[:depth]
    out.append(classifier.replace(variables={
        collection: {name: fresh[collection][name] if name in names else value
                     for name, value in tree.items()}
        for collection, tree in classifier.variables.items()}))
  return out


def rank_correlation(trained, randomised) -> np.ndarray:
  """Spearman's rank correlation of |trained[i]| and |randomised[i]|: [N].

  Over the pixels where either map is nonzero: ranks with ties averaged
  (`scipy.stats.rankdata`), then Pearson's correlation of the ranks, i.e.
  `scipy.stats.spearmanr` on those pixels. Pixels that are exactly 0 in both
  maps are left out: such zeros are fixed by the architecture whatever its
  parameters (tiny_cnn's 3 x 3 stride-4 stem never reads 7 of every 16
  pixels, so every gradient map is 0 there: 48% of the map, tied in any two
  maps), and counting them would credit a gradient method with agreement
  that says nothing about the parameters. A model-independent method still
  scores 1 (its two maps are equal on any pixels); for maps without exact
  zeros this is Adebayo et al.'s measure on the whole map. NaN for an image
  where either map is not finite or has fewer than 2 such pixels or is
  constant on them (no ranking).
  """
  a = np.abs(np.asarray(trained, np.float64)).reshape(len(trained), -1)
  b = np.abs(np.asarray(randomised, np.float64)).reshape(len(randomised), -1)
  if a.shape != b.shape:
    raise ValueError(f"maps of shapes {a.shape} and {b.shape} do not pair")
  out = np.full(len(a), np.nan)
  for i, (x, y) in enumerate(zip(a, b)):
    used = (x != 0) | (y != 0)
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or used.sum() < 2:
      continue
    rx = scipy.stats.rankdata(x[used])
    ry = scipy.stats.rankdata(y[used])
    rx -= rx.mean()
    ry -= ry.mean()
    norm = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    if norm > 0:
      out[i] = np.clip((rx * ry).sum() / norm, -1, 1)
  return out


def summarise_correlations(correlations: Sequence[np.ndarray],
                           depths: Sequence[int], *,
                           resamples: int = statistics.DEFAULT_RESAMPLES,
                           seed: int = 0) -> dict[str, Any]:
  """One method's check from its per-image correlations at each of `depths`.

  Returns {"rank_correlation": [per depth: {"depth", "mean", "low", "high" (the
  seeded percentile bootstrap interval of the mean,
  `statistics.bootstrap_interval`), "images" (finite correlations)}],
  "passed": mean at the deepest level <= `THRESHOLD` (None without a finite
  correlation there)}.
  """
  if len(correlations) != len(depths):
    raise ValueError(f"{len(correlations)} correlation arrays for depths {depths}")
  levels = []
  for depth, r in zip(depths, correlations):
    r = np.asarray(r, np.float64)
    r = r[np.isfinite(r)]
    if len(r) == 0:
      levels.append({"depth": int(depth), "mean": None, "low": None,
                     "high": None, "images": 0})
      continue
    low, high = statistics.bootstrap_interval(r, resamples=resamples, seed=seed)
    levels.append({"depth": int(depth), "mean": float(r.mean()), "low": low,
                   "high": high, "images": int(len(r))})
  deepest = levels[-1]["mean"] if levels else None
  return {"rank_correlation": levels,
          "passed": None if deepest is None else bool(deepest <= THRESHOLD)}


def failure(check: dict[str, Any] | None) -> str | None:
  """Why a method failed the randomisation check (one line), or None."""
  if not check or check["passed"] is not False:
    return None
  deepest = check["rank_correlation"][-1]
  return (f"failed the randomisation test: mean rank correlation "
          f"{deepest['mean']:.3f} > {THRESHOLD:g} with the classifier's top "
          f"{deepest['depth']} modules re-initialised")


def randomisation_checks(methods: Sequence[Any], classifier: Classifier, images,
                         *, seed: int = 0,
                         depths: Sequence[int | None] = DEPTHS,
                         resamples: int = statistics.DEFAULT_RESAMPLES,
                         place: Callable[[Any], Any] = lambda tree: tree,
                         host: Callable[[Any], Any] = np.asarray
                         ) -> dict[str, Any]:
  """The randomisation test of every method on `images` [N, H, W, 3] in [0, 1].

  methods: objects with `name` and `explain(classifier, images, target,
  key)` (`protocol.EvalMethod`). Each explains the trained classifier's
  prediction t on the images under the trained classifier and under
  `cascade(classifier, k, depths)` (one key k for all depths), with the
  same explain key for every classifier (a random method draws the same
  noise). DRE's and MGnet's maps come from a generator reading the
  classifier's features (taps): under a randomised classifier the same
  trained generator reads the randomised classifier's features. The key k
  and the explain keys derive from `seed`.
  place: puts a pytree on the devices (e.g. replicated over a mesh);
  host: brings an array back (`parallel.to_host`).

  Returns {"images", "levels": [the modules randomised at each depth],
  "threshold", "measure", "seed", "methods": {name: `summarise_correlations`}}.
  """
  randomise_key, explain_key = jax.random.split(jax.random.key(seed))
  images = jnp.asarray(images, jnp.float32)
  order = top_modules(classifier)
  depths = [len(order) if d is None else min(d, len(order)) for d in depths]
  classifiers = [classifier] + cascade(classifier, randomise_key, depths)
  placed = [place(c) for c in classifiers]
  x = place(images)
  target = jax.jit(lambda c, v: jnp.argmax(c.logits(v), axis=-1))(placed[0], x)
  out = {}
  for m in methods:
    key = jax.random.fold_in(explain_key, zlib.crc32(m.name.encode()) & 0x7FFFFFFF)
    data = place(jax.random.key_data(key))
    fn = jax.jit(lambda c, v, t, k, _m=m: _m.explain(c, v, t,
                                                     jax.random.wrap_key_data(k)))
    maps = [host(fn(c, x, target, data)) for c in placed]
    out[m.name] = summarise_correlations(
        [rank_correlation(maps[0], other) for other in maps[1:]], depths,
        resamples=resamples, seed=seed)
  return {"images": int(len(images)),
          "levels": [list(order[:d]) for d in depths],
          "threshold": THRESHOLD, "measure": MEASURE, "seed": seed,
          "methods": out}
