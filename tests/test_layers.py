"""Shared model layers against independent implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dre_jax.models import layers


def _reference(x, kernel, stride):
  """XLA's grouped convolution with its own TF "SAME" padding."""
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1],
      precision=jax.lax.Precision.HIGHEST)


@pytest.mark.parametrize("impl", ["slices", "grouped"])
@pytest.mark.parametrize("size,kernel,stride", [(14, 3, 1), (15, 5, 2), (16, 5, 2),
                                                (7, 3, 2), (9, 5, 1), (16, 3, 2)])
def test_depthwise_conv_matches_grouped_convolution(size, kernel, stride, impl):
  # Heights `size`, widths `size + 1`: an odd and an even side in every case.
  x = jax.random.normal(jax.random.key(0), (2, size, size + 1, 6))
  module = layers.DepthwiseConv(kernel, stride, impl=impl)
  variables = module.init(jax.random.key(1), x)
  w = variables["params"]["kernel"]
  assert w.shape == (kernel, kernel, 1, 6)
  ours = module.apply(variables, x)
  ref = _reference(x, w, stride)
  assert ours.shape == ref.shape == (2, -(-size // stride), -(-(size + 1) // stride), 6)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-5)
  # Gradients with respect to the input and to the kernel agree too.
  loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
  ours_g = jax.grad(loss(lambda x, w: module.apply({"params": {"kernel": w}}, x)),
                    argnums=(0, 1))(x, w)
  ref_g = jax.grad(loss(lambda x, w: _reference(x, w, stride)), argnums=(0, 1))(x, w)
  for a, b in zip(ours_g, ref_g):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


def _has_convolution(impl: str) -> bool:
  module = layers.DepthwiseConv(3, 2, impl=impl)
  x = jnp.zeros((1, 8, 8, 4))
  variables = module.init(jax.random.key(0), x)
  return "conv_general_dilated" in str(jax.make_jaxpr(module.apply)(variables, x))


def test_depthwise_conv_auto_picks_slices_on_cpu():
  assert jax.default_backend() == "cpu"
  assert layers.depthwise_impl("auto") == "slices"
  assert layers.depthwise_impl("auto", backend="gpu") == "grouped"
  assert layers.depthwise_impl("auto", backend="tpu") == "grouped"
  assert not _has_convolution("auto")
  assert not _has_convolution("slices")
  assert _has_convolution("grouped")


def test_depthwise_conv_rejects_unknown_impl():
  with pytest.raises(ValueError, match="'slices', 'grouped'"):
    _has_convolution("winograd")
