"""Shared model layers against independent implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dre_jax.models import layers


@pytest.mark.parametrize("size,kernel,stride", [(14, 3, 1), (15, 5, 2), (16, 5, 2),
                                                (7, 3, 2), (9, 5, 1)])
def test_depthwise_conv_matches_grouped_convolution(size, kernel, stride):
  x = jax.random.normal(jax.random.key(0), (2, size, size + 1, 6))
  module = layers.DepthwiseConv(kernel, stride)
  variables = module.init(jax.random.key(1), x)
  ours = module.apply(variables, x)
  ref = jax.lax.conv_general_dilated(
      x, variables["params"]["kernel"], (stride, stride), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=6)
  assert ours.shape == ref.shape
  np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-5)
  # Gradients with respect to the input agree too.
  g = lambda f: jax.grad(lambda x: jnp.sum(jnp.sin(f(x))))(x)
  np.testing.assert_allclose(
      np.asarray(g(lambda x: module.apply(variables, x))),
      np.asarray(g(lambda x: jax.lax.conv_general_dilated(
          x, variables["params"]["kernel"], (stride, stride), "SAME",
          dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=6))),
      atol=1e-4)
