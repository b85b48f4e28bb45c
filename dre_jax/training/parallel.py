"""Moved to `dre_jax.parallel` (evaluation shares it and must not import training)."""

from dre_jax.parallel import *  # noqa: F401,F403
from dre_jax.parallel import AXIS  # noqa: F401
