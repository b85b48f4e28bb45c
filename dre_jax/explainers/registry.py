"""The registry of explainers: register / get / names, as `dre_jax.models.registry`.

A method is registered with its explain function

    explain(classifier, images, target, key, **settings) -> saliency [N, H, W]

whose keyword-only arguments ARE its settings: their defaults are the original
papers' values (each function's docstring gives the source of each default),
`default_config(name)` returns them as an `ml_collections.ConfigDict`, and an
unknown setting raises a `TypeError` that names the known ones. Methods that
need trained generator variables (DRE, MGnet, DRE+) register a `load` function
as well; `get(name, workdir=...)` or `get(name, **variables)` binds them.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from dre_jax import validation
from dre_jax.classifier import Classifier


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
    bound: names of those arguments (read from `explain`'s signature).
  """

  name: str
  explain: Callable[..., jnp.ndarray]
  passes: Callable[..., float]
  reference: str
  load: Callable[[str], dict[str, Any]] | None = None
  revision: int = 1

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
             revision: int = 1):
  """Decorator: `@register("vgrad", passes=..., reference=...)` on an explain function.

  revision: raise it when a change to the code changes the method's maps; the
  evaluation's cache keys include it, so results cached before are not reused.
  """

  def decorate(explain):
    if name in _REGISTRY:
      raise ValueError(f"explainer {name!r} is registered twice")
    _REGISTRY[name] = Method(name=name, explain=explain, passes=passes,
                             reference=reference, load=load, revision=revision)
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

  def explainer(classifier: Classifier, images: jnp.ndarray, target, key=None,
                **settings) -> jnp.ndarray:
    settings = check_settings(name, settings)
    images = validation.check_images(images).astype(jnp.float32)
    if target is None:
      target = jnp.argmax(classifier.logits(images), axis=-1).astype(jnp.int32)
    else:
      target = validation.check_target(target, images.shape[0],
                                       classifier.num_classes)
    saliency = m.explain(classifier, images, target, key, **bound, **settings)
    return saliency.astype(jnp.float32)

  explainer.__name__ = explainer.__qualname__ = f"explain_{name}"
  explainer.__doc__ = m.explain.__doc__
  return explainer


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
