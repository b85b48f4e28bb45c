"""Layers with PyTorch semantics, shared by the torchvision ports.

All arrays are NHWC. The pooling functions reproduce `torch.nn.MaxPool2d` and
`torch.nn.AdaptiveAvgPool2d` exactly, including ceil-mode output sizes, so the
ports match torchvision at any input size, not only at 224.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero


def tap(module: nn.Module, taps: dict, name: str, x: jnp.ndarray) -> jnp.ndarray:
  """Records `x` as the feature tap `name` and returns the value to continue with.

  Outside `init` the value goes through Flax's `perturb` (collection
  "perturbations", variable `tap_<name>`): without that collection it is a no-op;
  with it, the model continues from `x + delta`, so the gradient with respect to
  `delta` is the gradient with respect to the tap (`dre_jax.classifier`).
  """
  if not module.is_initializing():
    x = module.perturb(f"tap_{name}", x)
  taps[name] = x
  return x


def conv_impl(impl: str = "auto", backend: str | None = None) -> str:
  """The form `conv_general_dilated` takes: "auto" is "transposed_kernel" on the
  CPU backend (default `jax.default_backend()`), "lax" elsewhere."""
  if impl not in ("auto", "transposed_kernel", "lax"):
    raise ValueError(f"conv impl must be 'auto', 'transposed_kernel' or 'lax', got {impl!r}")
  if impl != "auto":
    return impl
  return "transposed_kernel" if (backend or jax.default_backend()) == "cpu" else "lax"


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None, *, impl: str = "auto"):
  """`jax.lax.conv_general_dilated`, the same values and derivatives, whose
  input gradient reads an explicitly transposed copy of the kernel on the CPU.

  The gradient of a convolution with respect to its input is a convolution of
  the output cotangent with the kernel's input and output features swapped;
  JAX expresses the swap in the dimension numbers (kernel "01oi"). XLA:CPU
  runs its fast convolution kernels only on kernels laid out "01io" and
  rewrites other convolutions into that form (a kernel transpose, folded away
  for a constant kernel) in the program's top-level computation only: inside
  a `lax.scan` or `while` body (SmoothGrad and Integrated Gradients over
  several chunks, MPert, XPert and FInv's optimisation loops) the input
  gradient's convolutions stay in the slow generic form. With impl
  "transposed_kernel" (`conv_impl`: the default on CPU) the tangent of the
  input is written as a convolution with `swapaxes(kernel, in, out)`, whose
  transpose (the input gradient) is a "01io" convolution wherever it runs:
  ResNet50, 224 px, one core, SmoothGrad in chunks of 8 pairs inside a scan:
  459 -> 223 ms per pair (`benchmarks/bench_cpu_loop_chunks.py`,
  docs/benchmarks.md). Grouped convolutions and impl "lax" call
  `jax.lax.conv_general_dilated` unchanged.
  """
  kwargs = dict(window_strides=window_strides, padding=padding,
                lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                feature_group_count=feature_group_count,
                batch_group_count=batch_group_count, precision=precision,
                preferred_element_type=preferred_element_type)
  if (conv_impl(impl) == "lax" or feature_group_count != 1 or batch_group_count != 1):
    return jax.lax.conv_general_dilated(lhs, rhs, dimension_numbers=dimension_numbers,
                                        **kwargs)
  dn = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  out_dim, in_dim = dn.rhs_spec[0], dn.rhs_spec[1]
  # The same convolution of a kernel with its feature dimensions swapped.
  swapped = jax.lax.ConvDimensionNumbers(
      dn.lhs_spec, (in_dim, out_dim) + tuple(dn.rhs_spec[2:]), dn.out_spec)

  convolve = _with_input_tangent(
      lambda x, w: jax.lax.conv_general_dilated(x, w, dimension_numbers=dn, **kwargs),
      lambda dx, w: jax.lax.conv_general_dilated(
          dx, jnp.swapaxes(w, out_dim, in_dim), dimension_numbers=swapped, **kwargs))
  return convolve(lhs, rhs)


def _with_input_tangent(forward, input_tangent):
  """`forward(x, w)`, linear in each argument, whose tangent in x is computed as
  `input_tangent(dx, w)`: the same values in the form whose transpose (the
  input gradient that reverse mode runs) is fast. The tangent in w is
  `forward(x, dw)`; a tangent that is a symbolic zero costs nothing."""

  @jax.custom_jvp
  def apply(x, w):
    return forward(x, w)

  def apply_jvp(primals, tangents):
    x, w = primals
    dx, dw = tangents
    y = apply(x, w)
    out = []
    if not isinstance(dx, SymbolicZero):
      out.append(input_tangent(dx, w))
    if not isinstance(dw, SymbolicZero):
      out.append(forward(x, dw))
    return y, sum(out[1:], out[0]) if out else jnp.zeros_like(y)

  apply.defjvp(apply_jvp, symbolic_zeros=True)
  return apply


def conv(features: int, kernel_size: int, *, stride: int = 1,
         padding: int | str = 0, use_bias: bool = False, dtype=jnp.float32,
         name: str) -> nn.Conv:
  """`torch.nn.Conv2d(..., kernel_size, stride, padding)`: symmetric padding
  (or "SAME"), computed by `conv_general_dilated`."""
  return nn.Conv(features, (kernel_size, kernel_size), strides=stride,
                 padding=padding, use_bias=use_bias, dtype=dtype, name=name,
                 conv_general_dilated=conv_general_dilated)


def batch_norm(*, train: bool, epsilon: float, dtype=jnp.float32,
               name: str) -> nn.BatchNorm:
  """`torch.nn.BatchNorm2d(eps=epsilon)` (torch momentum 0.1 = Flax 0.9).

  With train=False it uses the running statistics; with train=True it
  normalises by the batch statistics and updates `batch_stats` (Flax stores the
  biased batch variance where torch stores the unbiased one).
  """
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=epsilon, dtype=dtype, name=name)


def _pool_output_size(size: int, window: int, stride: int, padding: int,
                      ceil_mode: bool) -> int:
  """PyTorch's `pooling_output_shape` (dilation 1)."""
  span = size + 2 * padding - window
  out = (-(-span // stride) if ceil_mode else span // stride) + 1
  # In ceil mode the last window must start inside the input or left padding.
  if ceil_mode and (out - 1) * stride >= size + padding:
    out -= 1
  return out


def max_pool(x: jnp.ndarray, window: int, stride: int, padding: int = 0,
             ceil_mode: bool = False) -> jnp.ndarray:
  """`torch.nn.MaxPool2d(window, stride, padding, ceil_mode=ceil_mode)`.

  Args:
    x: [N, H, W, C].
    window, stride, padding: square kernel side, stride and symmetric padding;
      padded positions count as -inf, as in PyTorch.
    ceil_mode: round the output size up; the windows that this adds are padded
      with -inf on the bottom/right.

  Returns:
    [N, H', W', C] with PyTorch's output size.
  """
  if 2 * padding > window:
    raise ValueError(f"max_pool padding {padding} must be at most half the "
                     f"window {window} (PyTorch's rule); lower the padding.")
  pads = []
  for size in x.shape[1:3]:
    out = _pool_output_size(size, window, stride, padding, ceil_mode)
    if out < 1:
      raise ValueError(
          f"max_pool window {window} (padding {padding}) does not fit an input "
          f"of side {size}; use a larger input image.")
    pads.append((padding, max(0, (out - 1) * stride + window - size - padding)))
  return nn.max_pool(x, (window, window), strides=(stride, stride),
                     padding=pads)


def _adaptive_pool_matrix(size: int, out: int) -> np.ndarray:
  """[out, size] averaging weights of PyTorch's adaptive pooling bins.

  Bin i covers [floor(i * size / out), ceil((i + 1) * size / out)).
  """
  weights = np.zeros((out, size), np.float32)
  for i in range(out):
    start = (i * size) // out
    end = -(-(i + 1) * size // out)
    weights[i, start:end] = 1.0 / (end - start)
  return weights


def adaptive_avg_pool(x: jnp.ndarray, output_size: tuple[int, int]
                      ) -> jnp.ndarray:
  """`torch.nn.AdaptiveAvgPool2d(output_size)`: x [N, H, W, C] -> [N, h, w, C].

  A bin's mean is separable, so it is two small matrix products; when the
  input already has the output size every bin is one pixel and x is returned.
  """
  if tuple(x.shape[1:3]) == tuple(output_size):
    return x
  rows = jnp.asarray(_adaptive_pool_matrix(x.shape[1], output_size[0]),
                     x.dtype)
  cols = jnp.asarray(_adaptive_pool_matrix(x.shape[2], output_size[1]),
                     x.dtype)
  return jnp.einsum("ih,jw,nhwc->nijc", rows, cols, x,
                    precision=jax.lax.Precision.HIGHEST)


def same_padding(size: int, window: int, stride: int) -> tuple[tuple[int, int], int]:
  """TensorFlow "SAME" padding of one axis: ((before, after), output size)."""
  out = -(-size // stride)
  total = max((out - 1) * stride + window - size, 0)
  return (total // 2, total - total // 2), out


# How `DepthwiseConv` computes: "slices" (a sum of shifted, strided slices) or
# "grouped" (XLA's grouped convolution); "auto" picks by backend.
DEPTHWISE_IMPLS = ("auto", "slices", "grouped")


def depthwise_impl(impl: str = "auto", backend: str | None = None) -> str:
  """The form `DepthwiseConv(impl=...)` computes with: "slices" or "grouped".

  "auto" is "slices" on the CPU backend and "grouped" on the others (GPU,
  TPU); backend: default `jax.default_backend()`.
  """
  if impl not in DEPTHWISE_IMPLS:
    raise ValueError(f"depthwise impl {impl!r} is not one of {DEPTHWISE_IMPLS}")
  if impl != "auto":
    return impl
  return "slices" if (backend or jax.default_backend()) == "cpu" else "grouped"


class DepthwiseConv(nn.Module):
  """Depthwise k x k convolution with TF "SAME" padding, no bias.

  The kernel is `[k, k, 1, C]`, as `nn.Conv(feature_group_count=C)` stores it,
  so weights convert alike whichever form computes it (`depthwise_impl`):

  * "slices": a sum of k * k shifted, strided slices times per-channel
    weights (`depthwise_slices`, whose input gradient is the same kind of sum
    over the padded cotangent). XLA fuses that into one elementwise loop,
    which on CPUs runs several times faster than its grouped convolution, and
    its gradient faster still (`benchmarks/bench_depthwise.py`); on GPUs the
    k * k reads of the input make it memory-bound.
  * "grouped": `lax.conv_general_dilated` with `feature_group_count=C`, the
    form the accelerators' convolution libraries have kernels for.

  impl: "auto" (slices on CPU, grouped on GPU/TPU, chosen at trace time),
  "slices" or "grouped".
  """

  kernel_size: int
  stride: int = 1
  dtype: jnp.dtype = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    """x: [N, H, W, C] -> [N, ceil(H / stride), ceil(W / stride), C]."""
    n, h, w, c = x.shape
    k, s = self.kernel_size, self.stride
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, 1, c))
    kernel = kernel.astype(self.dtype)
    pad_h, out_h = same_padding(h, k, s)
    pad_w, out_w = same_padding(w, k, s)
    x = x.astype(self.dtype)
    if depthwise_impl(self.impl) == "grouped":
      return jax.lax.conv_general_dilated(
          x, kernel, (s, s), (pad_h, pad_w),
          dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)
    return depthwise_slices(x, kernel[:, :, 0], s, pad_h, pad_w)


def _shifted_sum(xp: jnp.ndarray, w: jnp.ndarray, stride: int, out_h: int, out_w: int
                 ) -> jnp.ndarray:
  """sum_{a, b} xp[:, a + stride * i, b + stride * j, :] * w[a, b]: [N, out_h, out_w, C]."""
  n, _, _, c = xp.shape
  out = None
  for a in range(w.shape[0]):
    for b in range(w.shape[1]):
      window = jax.lax.slice(
          xp, (0, a, b, 0), (n, a + (out_h - 1) * stride + 1, b + (out_w - 1) * stride + 1, c),
          (1, stride, stride, 1))
      term = window * w[a, b]
      out = term if out is None else out + term
  return out


def depthwise_slices(x: jnp.ndarray, w: jnp.ndarray, stride: int,
                     pad_h: tuple[int, int], pad_w: tuple[int, int]) -> jnp.ndarray:
  """Depthwise cross-correlation as a sum of shifted, strided slices.

  x: [N, H, W, C], w: [k, k, C] -> [N, (H + sum(pad_h) - k) // stride + 1, ..., C].
  The values and derivatives of `lax.conv_general_dilated` with
  `feature_group_count=C`. Differentiated as written, the input gradient would
  be a sum of k * k padded copies of the cotangent, which XLA:CPU runs as
  separate unfused pads (about 70 ms for a [2, 112, 112, 32] 3 x 3 layer on
  one core against 0.4 ms forward). The input tangent is therefore written as
  the transpose of the input gradient's own shifted-slice form (the cotangent
  dilated by the stride, padded by k - 1, correlated with the flipped kernel
  and cropped), so that reverse mode, which transposes the tangent, runs that
  form; forward mode and higher derivatives keep their exact values.
  """
  k = w.shape[0]
  n, h, width, c = x.shape
  hp, wp = h + sum(pad_h), width + sum(pad_w)
  out_h, out_w = (hp - k) // stride + 1, (wp - k) // stride + 1

  def forward(x, w):
    return _shifted_sum(jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0))), w, stride, out_h, out_w)

  def input_gradient(g, w):
    span_h, span_w = (out_h - 1) * stride + 1, (out_w - 1) * stride + 1
    gp = jax.lax.pad(g, jnp.zeros((), g.dtype),
                     ((0, 0, 0), (k - 1, hp - span_h, stride - 1),
                      (k - 1, wp - span_w, stride - 1), (0, 0, 0)))
    grad_padded = _shifted_sum(gp, w[::-1, ::-1], 1, hp, wp)
    return grad_padded[:, pad_h[0]:pad_h[0] + h, pad_w[0]:pad_w[0] + width]

  out_struct = jax.ShapeDtypeStruct((n, out_h, out_w, c), jnp.result_type(x, w))

  def input_tangent(dx, w):  # the transpose of the transpose: slices when transposed
    return jax.linear_transpose(lambda g: input_gradient(g, w), out_struct)(dx)[0]

  return _with_input_tangent(forward, input_tangent)(x, w)
