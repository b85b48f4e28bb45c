"""The registry of explainers: register / get / bind / names, as `dre_jax.models.registry`.

A method is registered with its explain function

    explain(classifier, images, target, key, **settings) -> saliency [N, H, W]

whose keyword-only arguments ARE its settings: their defaults are the original
papers' values (each function's docstring gives the source of each default),
`default_config(name)` returns them as an `ml_collections.ConfigDict`, and an
unknown setting raises a `TypeError` that names the known ones. Methods that
need trained generator variables (DRE, MGnet, DRE+) say which generators they
need (`needs`) and register a `load` function as well; `bind(name, dre=...,
mgnet=..., settings=...)` binds what was trained, `get(name, workdir=...)` or
`get(name, **arguments)` the explain function's own arguments.

Everything else about a method is registered with it too: its display name, its
row of the DRE paper's Table 2, whether its map is a mask or an attribution,
and the settings that make it quick for tests and benchmarks.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dre_jax import validation
from dre_jax.classifier import Classifier

# The trained generators a method can need, by the stage-2 objective they were
# trained with (`config.dre.objective`), and how to train each.
GENERATORS = {
    "dre": "a DRE generator (train.py with config.dre.objective='dre', the default)",
    "mgnet": ("a generator trained with the MGnet objective (train.py "
              "--config=configs/mgnet.py, config.dre.objective='mgnet')"),
}

# What a method's map is (`Method.output`).
OUTPUTS = ("mask", "attribution")


class Generator(NamedTuple):
  """A trained generator: what `dre_jax.io.load_estimator` loads from a workdir.

  estimator: the `dre_jax.estimator.DRE` that holds the generator module;
  variables: its variables.
  """

  estimator: Any
  variables: Any


class Table2(NamedTuple):
  """A method's row of the DRE paper's Table 2, as the paper prints it.

  row: its position in the table (DRE+, not in the paper's table, after the
  ten); sensitive: the number of sensitive hyper-parameters ("-" for none);
  iterations: the number of iterations per explanation.
  """

  row: int
  sensitive: str
  iterations: str


class PaperMeans(NamedTuple):
  """What the DRE paper reports for a method on ImageNet: the MEAN columns of
  Table 3 (M_F normalised over DRE and the nine baselines) and Table 4 (M_E)."""

  faithfulness: float
  explainability: float


# The method the paper proposes: tables compare every other method with it
# (paired intervals) and the headline line of an evaluation reports it.
PROPOSED = "dre"


class MissingGenerator(ValueError):
  """`bind` was not given a generator that the method needs."""

  def __init__(self, name: str, missing: tuple[str, ...]):
    self.name, self.missing = name, missing
    super().__init__(
        f"explainer {name!r} needs "
        + " and ".join(f"{GENERATORS[g]}, given as {g}=" for g in missing))


@dataclasses.dataclass(frozen=True)
class Method:
  """One registered explainer.

  Attributes:
    name: registry key (the DRE paper's abbreviation, lower case: "gcam++").
    explain: `explain(classifier, images, target, key, *bound, **settings)`;
      keyword-only arguments with defaults are the settings.
    passes: `passes(**settings) -> float`, classifier forward + backward passes
      per image (the benchmark's unit; a forward alone counts 1/2, its share of
      the FLOPs of a forward + input gradient).
    reference: the original paper.
    load: for trained methods, `load(workdir) -> dict` of the arguments that
      `explain` takes before its settings (e.g. the generator variables), and
      optionally "classifier" (the classifier saved with them, returned by
      `load(name, workdir)`); None for methods that need nothing trained.
    revision: raised when a change to the code changes the method's maps (the
      evaluation's cache keys include it).
    display: the name tables and figures show ("GCAM++").
    table2: its row of the paper's Table 2, or None.
    paper: its ImageNet means in the paper's Tables 3 and 4, or None.
    output: "mask", a map in [0, 1] on an absolute scale (1 = relevant; shown
      as it is), or "attribution", a relevance score on the method's own scale.
    needs: the trained generators `bind` binds (keys of GENERATORS), in the
      order of `explain`'s bound arguments, two per generator (its estimator,
      then its variables).
    quick: `quick(samples, iterations) -> settings` with the method's counts
      cut (samples or steps, optimisation iterations), for tests and
      benchmarks; None for a method without counts.
    bound: names of the arguments `explain` takes before its settings (read
      from `explain`'s signature).
  """

  name: str
  explain: Callable[..., jnp.ndarray]
  passes: Callable[..., float]
  reference: str
  load: Callable[[str], dict[str, Any]] | None = None
  revision: int = 1
  display: str = ""
  table2: Table2 | None = None
  paper: PaperMeans | None = None
  output: str = "attribution"
  needs: tuple[str, ...] = ()
  quick: Callable[[int, int], dict[str, Any]] | None = None

  @property
  def bound(self) -> tuple[str, ...]:
    """Arguments of `explain` after (classifier, images, target, key) without defaults."""
    params = list(inspect.signature(self.explain).parameters.values())[4:]
    return tuple(p.name for p in params
                 if p.kind is p.KEYWORD_ONLY and p.default is p.empty)

  @property
  def defaults(self) -> dict[str, Any]:
    """The settings and their defaults (keyword-only arguments with defaults)."""
    params = inspect.signature(self.explain).parameters.values()
    return {p.name: p.default for p in params
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}

  @property
  def trained(self) -> bool:
    return bool(self.bound)


_REGISTRY: dict[str, Method] = {}


def register(name: str, *, passes: Callable[..., float], reference: str,
             load: Callable[[str], dict[str, Any]] | None = None,
             revision: int = 1, display: str = "", table2: Table2 | None = None,
             paper: PaperMeans | None = None, output: str = "attribution",
             needs: tuple[str, ...] = (),
             quick: Callable[[int, int], dict[str, Any]] | None = None):
  """Decorator: `@register("vgrad", passes=..., reference=...)` on an explain function.

  revision: raise it when a change to the code changes the method's maps; the
  evaluation's cache keys include it, so results cached before are not reused.
  The other arguments are the `Method`'s attributes (display defaults to name).
  """

  def decorate(explain):
    if name in _REGISTRY:
      raise ValueError(f"explainer {name!r} is registered twice")
    m = Method(name=name, explain=explain, passes=passes, reference=reference,
               load=load, revision=revision, display=display or name,
               table2=table2, paper=paper, output=output, needs=tuple(needs),
               quick=quick)
    if output not in OUTPUTS:
      raise ValueError(f"explainer {name!r}: output must be one of {OUTPUTS}, "
                       f"got {output!r}")
    unknown = sorted(set(m.needs) - set(GENERATORS))
    if unknown:
      raise ValueError(f"explainer {name!r} needs unknown generators {unknown}; "
                       f"known: {', '.join(GENERATORS)}")
    if m.needs and len(m.bound) != 2 * len(m.needs):
      raise ValueError(f"explainer {name!r} needs {list(m.needs)}: its explain "
                       "function must take an estimator and variables for "
                       f"each, got {list(m.bound)}")
    _REGISTRY[name] = m
    return explain

  return decorate


def names() -> list[str]:
  """The registered explainers, sorted."""
  return sorted(_REGISTRY)


def method(name: str) -> Method:
  """The registered `Method` of `name`; a clear error for an unknown name."""
  try:
    return _REGISTRY[name]
  except KeyError:
    close = difflib.get_close_matches(str(name), names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise KeyError(f"unknown explainer {name!r}{hint}; registered: "
                   f"{', '.join(names())}") from None


def check_settings(name: str, settings: dict[str, Any]) -> dict[str, Any]:
  """The method's defaults updated with `settings`; a TypeError for unknown ones."""
  defaults = method(name).defaults
  unknown = sorted(set(settings) - set(defaults))
  if unknown:
    hints = []
    for u in unknown:
      close = difflib.get_close_matches(u, defaults, n=1)
      hints.append(f"{u!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(f"explainer {name!r} has no setting {', '.join(hints)}; its "
                    f"settings: {', '.join(sorted(defaults)) or 'none'}")
  return {**defaults, **settings}


def default_config(name: str):
  """The settings of `name` with the original papers' defaults, as a ConfigDict."""
  import ml_collections  # kept out of the import path of the explainers themselves
  return ml_collections.ConfigDict(method(name).defaults)


def passes(name: str, **settings) -> float:
  """Classifier forward + backward passes per image of `name` with `settings`."""
  return float(method(name).passes(**check_settings(name, settings)))


def get(name: str, workdir: str | None = None, **bound):
  """The explainer `name` as `fn(classifier, images, target, key, **settings)`.

  Returns saliency [N, H, W] float32, higher = more relevant, for the whole batch.
  images: [N, H, W, 3] float in [0, 1] (or uint8, read as x / 255; checked by
  `dre_jax.validation`); target: [N] int classes to explain (one int for all),
  or None for the classifier's argmax; key: a `jax.random` key (unused by the
  deterministic methods, which accept None). The function is pure and jittable
  with the classifier as a pytree argument; settings are static Python values
  (`jax.jit(functools.partial(fn, samples=10))`).

  Trained methods (`method(name).trained`: dre, mgnet, dre+) need their
  generator: `get("dre", workdir="runs/x")` loads what `train.py` trained there,
  or pass the arguments directly, e.g. `get("dre", estimator=dre,
  generator_variables=variables)`. Their arrays are closed over (JAX passes
  them to the compiled program as arguments, not constants).
  """
  m = method(name)
  if workdir is not None:
    if m.load is None:
      raise TypeError(f"explainer {name!r} needs no trained workdir; call "
                      f"get({name!r}) without workdir=")
    loaded = dict(m.load(workdir))
    loaded.pop("classifier", None)
    bound = {**loaded, **bound}
  missing = [b for b in m.bound if b not in bound]
  extra = sorted(set(bound) - set(m.bound))
  if extra:
    raise TypeError(f"get({name!r}) got unexpected arguments {extra}; "
                    + (f"it takes {list(m.bound)} or workdir=" if m.bound else
                       "settings go to the returned function's call"))
  if missing:
    raise TypeError(
        f"explainer {name!r} needs a trained generator: get({name!r}, "
        f"workdir=DIR) with what train.py wrote to DIR, or get({name!r}, "
        f"{', '.join(f'{b}=...' for b in m.bound)})")

  arrays = {k: v for k, v in bound.items() if _is_arrays(v)}
  static = {k: v for k, v in bound.items() if k not in arrays}

  def explainer(classifier: Classifier, images: jnp.ndarray, target, key=None,
                **settings) -> jnp.ndarray:
    settings = check_settings(name, settings)
    images = validation.check_images(images).astype(jnp.float32)
    if target is not None:
      target = validation.check_target(target, images.shape[0],
                                       classifier.num_classes)
    frozen = _hashable(static), _hashable(settings)
    if None in frozen:  # a setting that cannot be a static argument: not compiled
      return _explain(m.explain, classifier, images, target, key, arrays,
                      tuple(static.items()), tuple(settings.items()))
    return _compiled(name)(classifier, images, target, key, arrays, *frozen)

  explainer.__name__ = explainer.__qualname__ = f"explain_{name}"
  explainer.__doc__ = m.explain.__doc__
  return explainer


def _explain(explain, classifier, images, target, key, arrays, static, settings):
  """The method's maps, after the checks of `get`'s function (target None: the
  classifier's prediction)."""
  if target is None:
    target = jnp.argmax(classifier.logits(images), axis=-1).astype(jnp.int32)
  saliency = explain(classifier, images, target, key, **arrays, **dict(static),
                     **dict(settings))
  return saliency.astype(jnp.float32)


@functools.lru_cache(maxsize=None)
def _compiled(name: str):
  """`_explain` of the method `name`, jitted with its settings and its bound
  non-array arguments (an estimator) static: one compiled program per method,
  shapes and settings, shared by every `get` function (called outside jit,
  an explainer would otherwise run op by op: ~50 s instead of ~7 s for
  SmoothGrad on EfficientNet-Lite0 at 224 px on a 2-core CPU)."""
  return jax.jit(functools.partial(_explain, method(name).explain),
                 static_argnums=(5, 6))


def _is_arrays(value) -> bool:
  """True for a pytree whose leaves are all arrays (a jit argument)."""
  leaves = jax.tree.leaves(value)
  return bool(leaves) and all(isinstance(l, (jax.Array, np.ndarray))
                              for l in leaves)


def _hashable(items: dict[str, Any]):
  """`items` as a sorted tuple usable as a static jit argument (lists become
  tuples), or None when a value cannot be hashed."""
  freeze = lambda v: tuple(map(freeze, v)) if isinstance(v, list) else v  # noqa: E731
  frozen = tuple(sorted((k, freeze(v)) for k, v in items.items()))
  try:
    hash(frozen)
  except TypeError:
    return None
  return frozen


def load(name: str, workdir: str):
  """(fn, classifier): the trained explainer `name` from `workdir` and its classifier.

  `fn` is `get(name, workdir=workdir)`; `classifier` the frozen classifier saved
  with the generator (the one to pass to `fn`).
  """
  m = method(name)
  if m.load is None:
    raise TypeError(f"explainer {name!r} needs no trained workdir; use get({name!r})")
  loaded = dict(m.load(workdir))
  classifier = loaded.pop("classifier", None)
  if classifier is None:
    raise ValueError(f"the loader of {name!r} returned no classifier; use "
                     f"get({name!r}, workdir=...) with your classifier")
  return get(name, **loaded), classifier


def quick_settings(name: str, samples: int = 4, iterations: int = 12
                   ) -> dict[str, Any]:
  """The settings of `name` with its counts cut, for tests and benchmarks.

  samples: SmoothGrad's samples and Integrated Gradients' steps; iterations:
  the optimisation iterations of MPert, XPert and FInv. {} for a method
  without counts (one pass each).
  """
  m = method(name)
  return {} if m.quick is None else dict(m.quick(samples, iterations))


def arguments(name: str, *, dre: Generator | None = None,
              mgnet: Generator | None = None) -> dict[str, Any]:
  """The arguments `name`'s explain function takes before its settings.

  dre, mgnet: the trained generators (`Generator`, or an (estimator, variables)
  pair), each bound where the method needs it (`Method.needs`); one it does not
  need is ignored. Raises `MissingGenerator` (naming what to train) for one
  that it needs and is not given.
  """
  m = method(name)
  given = {"dre": dre, "mgnet": mgnet}
  missing = tuple(g for g in m.needs if given[g] is None)
  if missing:
    raise MissingGenerator(name, missing)
  if m.trained and not m.needs:
    raise TypeError(f"explainer {name!r} binds no generator; use get({name!r}, "
                    f"workdir=...) or get({name!r}, "
                    f"{', '.join(f'{b}=...' for b in m.bound)})")
  bound = {}
  for i, kind in enumerate(m.needs):
    bound[m.bound[2 * i]], bound[m.bound[2 * i + 1]] = given[kind]
  return bound


def bind(name: str, *, dre: Generator | None = None,
         mgnet: Generator | None = None,
         settings: dict[str, Any] | None = None):
  """The explainer `name` ready to run: `fn(classifier, images, target, key)`.

  dre, mgnet: what was trained (`Generator`s, e.g. from a workdir's
  `dre_jax.io.load_estimator`), bound where the method needs them
  (`arguments`; a missing one raises `MissingGenerator`, a ValueError naming
  what to train); settings: checked against the method's (a TypeError names
  the known ones), the rest at their defaults. `fn` is `get`'s function with
  these bound: pure and jittable with the classifier as an argument.
  """
  settings = check_settings(name, dict(settings or {}))
  fn = get(name, **arguments(name, dre=_as_jax(dre), mgnet=_as_jax(mgnet)))
  return functools.partial(fn, **settings)


def _as_jax(generator: Generator | None) -> Generator | None:
  """The generator with jax arrays (numpy leaves closed over would be indexed
  by tracers inside jit); jax arrays, replicated ones too, stay as they are."""
  if generator is None:
    return None
  estimator, variables = generator
  return Generator(estimator, jax.tree.map(jnp.asarray, variables))


# --------------------------------------------------------------------------
# Helpers shared by the methods.

def target_scores(logits: jnp.ndarray, target: jnp.ndarray,
                  score: str = "logit") -> jnp.ndarray:
  """[N] class score of target[i]: the logit (pre-softmax), probability or log-probability."""
  if score == "logit":
    s = logits
  elif score == "probability":
    s = jax.nn.softmax(logits, axis=-1)
  elif score == "log_probability":
    s = jax.nn.log_softmax(logits, axis=-1)
  else:
    raise ValueError(f"score must be 'logit', 'probability' or 'log_probability', "
                     f"got {score!r}")
  return jnp.take_along_axis(s, target[:, None], axis=1)[:, 0]


def require_key(name: str, key) -> jax.Array:
  if key is None:
    raise ValueError(f"explainer {name!r} is random: pass a key, e.g. "
                     "jax.random.key(0)")
  return key


def parse_settings(items) -> dict[str, dict[str, object]]:
  """("smgrad.samples=20", "gcam++.tap='layer3'") -> {"smgrad": {"samples": 20}, ...}.

  Values are Python literals (numbers, strings in quotes, tuples, True/False);
  anything else is taken as a string.
  """
  if isinstance(items, str):
    items = [items] if items else []
  out: dict[str, dict[str, object]] = {}
  for item in items:
    name_key, sep, value = str(item).partition("=")
    method, dot, key = name_key.strip().rpartition(".")
    if not (sep and dot and method and key):
      raise ValueError(
          f"method setting {item!r} must read METHOD.SETTING=VALUE, "
          "e.g. 'smgrad.samples=20'")
    try:
      parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      parsed = value.strip()
    out.setdefault(method, {})[key] = parsed
  return out
