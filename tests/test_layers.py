"""Shared model layers against independent implementations."""

import re

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
  # Forward mode (each argument alone and both) and a second derivative.
  ours_f = lambda x, w: module.apply({"params": {"kernel": w}}, x)  # noqa: E731
  ref_f = lambda x, w: _reference(x, w, stride)  # noqa: E731
  dx = jax.random.normal(jax.random.key(2), x.shape)
  dw = jax.random.normal(jax.random.key(3), w.shape)
  for tangents in ((dx, jnp.zeros_like(w)), (jnp.zeros_like(x), dw), (dx, dw)):
    np.testing.assert_allclose(np.asarray(jax.jvp(ours_f, (x, w), tangents)[1]),
                               np.asarray(jax.jvp(ref_f, (x, w), tangents)[1]), atol=1e-4)
  input_grad_norm = lambda f: lambda x, w: jnp.sum(jax.grad(loss(f))(x, w) ** 2)  # noqa: E731
  for a, b in zip(jax.grad(input_grad_norm(ours_f), argnums=(0, 1))(x, w),
                  jax.grad(input_grad_norm(ref_f), argnums=(0, 1))(x, w)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_slices_input_gradient_is_one_shifted_sum(stride):
  """Differentiated as written, the slices' input gradient is k * k padded copies
  of the cotangent (unfused pads on XLA:CPU, 10-20x the forward's time); the
  custom derivative pads the cotangent once (and the input, as the forward does)
  and sums shifted slices of it."""
  x = jax.random.normal(jax.random.key(0), (1, 12, 13, 4))
  w = jax.random.normal(jax.random.key(1), (5, 5, 4))
  pad, _ = layers.same_padding(12, 5, stride)
  pad_w, _ = layers.same_padding(13, 5, stride)
  ours = lambda x: jnp.sum(jnp.sin(layers.depthwise_slices(x, w, stride, pad, pad_w)))  # noqa: E731
  plain = lambda x: jnp.sum(jnp.sin(layers._shifted_sum(  # noqa: E731
      jnp.pad(x, ((0, 0), pad, pad_w, (0, 0))), w, stride, *ours_shape(x))))
  ours_shape = lambda x: layers.depthwise_slices(x, w, stride, pad, pad_w).shape[1:3]  # noqa: E731

  def count(f):  # pads that enlarge an array (a negative padding is a crop)
    configs = re.findall(r"padding_config=\(([^=]*?)\)\s*\]", str(jax.make_jaxpr(jax.grad(f))(x)))
    return sum(any(int(v) > 0 for v in re.findall(r"-?\d+", c.replace("np.int64", "")))
               for c in configs)

  np.testing.assert_allclose(np.asarray(jax.grad(ours)(x)), np.asarray(jax.grad(plain)(x)),
                             rtol=1e-5, atol=1e-5)
  assert count(plain) >= 25 and count(ours) <= 3, (count(plain), count(ours))


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


# (stride, padding, kernel size, rhs dilation): the classifiers' convolutions
# (strided 1x1 shortcuts, 3x3 and 7x7 with symmetric padding, TF "SAME").
CONV_CASES = [(1, ((1, 1), (1, 1)), 3, 1), (2, ((3, 3), (3, 3)), 7, 1),
              (2, ((0, 0), (0, 0)), 1, 1), (2, "SAME", 3, 1), (1, "SAME", 3, 2)]


def _conv(impl, stride, padding, rhs_dilation):
  return lambda x, w: layers.conv_general_dilated(
      x, w, (stride, stride), padding, rhs_dilation=(rhs_dilation,) * 2,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), impl=impl)


@pytest.mark.parametrize("stride,padding,kernel,rhs_dilation", CONV_CASES)
def test_transposed_kernel_conv_has_lax_values_and_derivatives(stride, padding, kernel,
                                                               rhs_dilation):
  x = jax.random.normal(jax.random.key(0), (2, 11, 12, 5))
  w = jax.random.normal(jax.random.key(1), (kernel, kernel, 5, 7))
  ours, ref = (_conv(impl, stride, padding, rhs_dilation)
               for impl in ("transposed_kernel", "lax"))
  close = lambda a, b: np.testing.assert_allclose(  # noqa: E731
      np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)
  close(ours(x, w), ref(x, w))
  loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
  for a, b in zip(jax.grad(loss(ours), argnums=(0, 1))(x, w),
                  jax.grad(loss(ref), argnums=(0, 1))(x, w)):
    close(a, b)
  # Forward mode, each argument alone and both, and a second derivative.
  dx, dw = jax.random.normal(jax.random.key(2), x.shape), jax.random.normal(
      jax.random.key(3), w.shape)
  for tangents in ((dx, jnp.zeros_like(w)), (jnp.zeros_like(x), dw), (dx, dw)):
    close(jax.jvp(ours, (x, w), tangents)[1], jax.jvp(ref, (x, w), tangents)[1])
  input_grad_norm = lambda f: lambda x, w: jnp.sum(  # noqa: E731
      jax.grad(loss(f))(x, w) ** 2)
  close(jax.grad(input_grad_norm(ours), argnums=1)(x, w),
        jax.grad(input_grad_norm(ref), argnums=1)(x, w))


def _loop_program_dim_labels(impl: str) -> list[str]:
  """The kernel layouts of the convolutions of a compiled `lax.scan` whose body
  takes the input gradient of two convolutions with constant kernels."""
  w1 = jax.random.normal(jax.random.key(1), (3, 3, 3, 8))
  w2 = jax.random.normal(jax.random.key(2), (3, 3, 8, 4))
  conv = _conv(impl, 1, "SAME", 1)
  score = lambda x: jnp.sum(jnp.sin(conv(jax.nn.relu(conv(x, w1)), w2)))  # noqa: E731

  def body(total, x):
    return total + jax.grad(score)(x), None

  program = jax.jit(lambda xs: jax.lax.scan(body, jnp.zeros(xs.shape[1:]), xs)[0])
  text = program.lower(jnp.zeros((3, 1, 16, 16, 3))).compile().as_text()
  return re.findall(r"dim_labels=\w+_(\w+)->", text)


def test_transposed_kernel_input_gradient_is_canonical_inside_a_loop():
  """XLA:CPU rewrites a convolution to its fast kernel layout ("01io") only in a
  program's top-level computation; the input gradient's convolutions inside a
  loop body keep JAX's swapped layout ("01oi") unless the kernel is transposed
  explicitly, as impl "transposed_kernel" does."""
  assert jax.default_backend() == "cpu"
  assert layers.conv_impl("auto") == "transposed_kernel"
  assert layers.conv_impl("auto", backend="gpu") == "lax"
  ours = _loop_program_dim_labels("transposed_kernel")
  plain = _loop_program_dim_labels("lax")
  assert len(ours) >= 3 and set(ours) == {"01io"}, (ours, plain)


def test_conv_rejects_unknown_impl():
  with pytest.raises(ValueError, match="'transposed_kernel' or 'lax'"):
    layers.conv_impl("winograd")
