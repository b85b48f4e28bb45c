"""`config.eval` checked against the explainer registry: methods and their settings.

The fields and their defaults (the paper's protocol, Sec. 4.1-4.2) are
`dre_jax.config.eval_defaults`.
"""

from __future__ import annotations

import ast


def method_names(c) -> list[str]:
  """config.eval.methods as a list; all registered explainers when empty."""
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  names = [n.strip() for n in c.methods.split(",") if n.strip()]
  for name in names:
    explainers.method(name)  # a KeyError with a "did you mean" for a typo
  return names or explainers.names()


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
  method_names(c)
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  for name, settings in parse_settings(c.settings).items():
    explainers.check_settings(name, settings)  # names the known ones


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
          f"config.eval.settings item {item!r} must read METHOD.SETTING=VALUE, "
          "e.g. 'smgrad.samples=20'")
    try:
      parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      parsed = value.strip()
    out.setdefault(method, {})[key] = parsed
  return out
