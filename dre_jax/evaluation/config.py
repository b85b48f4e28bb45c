"""`config.eval` checked against the explainer registry: methods and their settings.

The fields and their defaults (the paper's protocol, Sec. 4.1-4.2) are
`dre_jax.config.eval_defaults`.
"""

from __future__ import annotations


def method_names(c) -> list[str]:
  """config.eval.methods as a list; all registered explainers when empty."""
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  names = [n.strip() for n in c.methods.split(",") if n.strip()]
  for name in names:
    explainers.method(name)  # a KeyError with a "did you mean" for a typo
  return names or explainers.names()


def pools(c) -> dict[str, list[str]]:
  """config.eval.pools as {name: methods}; ValueError naming a bad entry."""
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  out: dict[str, list[str]] = {}
  for entry in c.pools:
    name, sep, methods = entry.partition("=")
    names = [n.strip() for n in methods.split(",") if n.strip()]
    if not sep or not name.strip() or not names or name.strip() in out:
      raise ValueError(f"config.eval.pools entry {entry!r} must be a new "
                       "'NAME=method,method,...'")
    for method in names:
      explainers.method(method)  # a KeyError with a "did you mean" for a typo
    out[name.strip()] = names
  return out


def validate(c) -> None:
  """Raises ValueError naming the field and the fix for a wrong `config.eval`."""
  if c.num_images < 0:
    raise ValueError(f"config.eval.num_images must be >= 0 (0: the whole "
                     f"split), got {c.num_images}")
  for name in ("batch_size", "shard_size", "num_steps", "steps_per_call"):
    if c[name] <= 0:
      raise ValueError(f"config.eval.{name} must be > 0, got {c[name]}")
  if c.tie_break_sigma < 0 or c.tie_break_weight < 0:
    raise ValueError("config.eval.tie_break_sigma and tie_break_weight must be "
                     ">= 0 (sigma 0 switches the tie-breaker off)")
  if c.sanity_images < 0:
    raise ValueError(f"config.eval.sanity_images must be >= 0 (0: no "
                     f"randomisation test), got {c.sanity_images}")
  if c.bootstrap_resamples < 1:
    raise ValueError(f"config.eval.bootstrap_resamples must be >= 1, got "
                     f"{c.bootstrap_resamples}")
  method_names(c)
  pools(c)
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  for name, settings in explainers.parse_settings(c.settings).items():
    explainers.check_settings(name, settings)  # names the known ones
