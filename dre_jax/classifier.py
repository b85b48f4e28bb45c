"""The frozen classifier f that DRE, every explainer and the metrics share.

A `Classifier` is one value: the architecture's spec (preprocessing, tap names),
the Flax module and its variables. It is a JAX pytree whose only leaves are the
variables, so it passes through `jax.jit`, `vmap` and `shard_map` like an array:

    clf = Classifier.create("resnet50", variables)
    logits = clf.logits(images)                  # [N, K]
    p_t = clf.probability(images, target)        # [N], softmax of the target
    taps = clf.taps(images)                      # the 4 generator taps
    value, head = clf.logits_from_tap(images, "layer4")
    grad = jax.grad(lambda a: head(a)[jnp.arange(n), t].sum())(value)

It is frozen: batch norm uses its running statistics (inference mode) and the
variables pass through `stop_gradient`, so no gradient ever reaches them.
Gradients with respect to the images and to any tap exist; the tap gradient uses
Flax's `perturb` (`dre_jax.models.layers.tap`): the forward pass continues from
`tap + delta` and d logits / d delta at delta = 0 is d logits / d tap.

images are always [N, H, W, 3] RGB, float in [0, 1] or uint8 in 0..255 (taken
as x / 255, `dre_jax.validation`); the classifier applies its own preprocessing
(`mean`, `std`, by default the architecture's).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from dre_jax import validation
from dre_jax.models import registry

Variables = Any


class Classifier(flax.struct.PyTreeNode):
  """A frozen classifier: `spec`, `module` (static) and `variables` (the leaves).

  Build with `Classifier.create(spec_or_name, variables)` or, for tests with
  random weights, `Classifier.init(spec_or_name, key)`.
  """

  spec: registry.ClassifierSpec = flax.struct.field(pytree_node=False)
  module: nn.Module = flax.struct.field(pytree_node=False)
  variables: Variables
  mean: tuple[float, float, float] = flax.struct.field(pytree_node=False, default=None)
  std: tuple[float, float, float] = flax.struct.field(pytree_node=False, default=None)

  @classmethod
  def create(cls, spec: str | registry.ClassifierSpec, variables: Variables, *,
             num_classes: int | None = None, dtype=jnp.float32,
             mean: tuple[float, float, float] | None = None,
             std: tuple[float, float, float] | None = None) -> "Classifier":
    """The classifier of `spec` with `variables` ({"params", "batch_stats"}).

    num_classes: the head size; default read from the variables.
    mean, std: override the architecture's preprocessing (e.g. (0.5,) * 3 and
      (0.5,) * 3 for images scaled to [-1, 1]).
    """
    spec = registry.get(spec) if isinstance(spec, str) else spec
    if num_classes is None:
      num_classes = _head_size(spec, variables)
    return cls(spec=spec, module=spec.build(num_classes=num_classes, dtype=dtype),
               variables=variables, mean=tuple(mean or spec.mean),
               std=tuple(std or spec.std))

  @classmethod
  def init(cls, spec: str | registry.ClassifierSpec, key: jax.Array, *,
           num_classes: int = 1000, image_size: int | None = None,
           dtype=jnp.float32) -> "Classifier":
    """Random weights (tests, or before fine-tuning)."""
    spec = registry.get(spec) if isinstance(spec, str) else spec
    size = image_size or spec.input_size
    module = spec.build(num_classes=num_classes, dtype=dtype)
    # Compiled: the same values as op-by-op initialisation, 2-4x sooner for
    # the full-size networks on a CPU.
    variables = jax.jit(functools.partial(module.init, train=False))(
        key, jnp.zeros((1, size, size, 3)))
    return cls(spec=spec, module=module, variables=variables,
               mean=tuple(spec.mean), std=tuple(spec.std))

  @property
  def num_classes(self) -> int:
    return _head_size(self.spec, self.variables)

  @property
  def dtype(self) -> jnp.dtype:
    """The compute dtype of the module (`spec.build(dtype=...)`): float32, or
    bfloat16 on GPUs and TPUs; the variables stay float32 and the logits come
    back float32."""
    return jnp.dtype(self.module.dtype)

  @property
  def tap_names(self) -> tuple[str, str, str, str]:
    """The generator's 4 taps, fine to coarse (strides 4-32; VGG19 2-16); the
    last is the main flow."""
    return self.spec.tap_names

  def preprocess(self, images: jnp.ndarray) -> jnp.ndarray:
    """[N, H, W, 3] float in [0, 1] or uint8 in 0..255 -> the model's input, float32.

    Shape and dtype are checked at trace time (`validation.as_images`); values
    are not (perturbed images may leave [0, 1]): `validation.check_images` does.
    """
    images = validation.as_images(images)
    mean = jnp.asarray(self.mean, jnp.float32)
    std = jnp.asarray(self.std, jnp.float32)
    return (images.astype(jnp.float32) - mean) / std

  def forward(self, images: jnp.ndarray, perturbations: dict | None = None
              ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """(logits [N, K] float32, every named feature map of the model).

    perturbations: {tap name: delta} added to those taps (all others zero).
    """
    variables = jax.lax.stop_gradient(self.variables)
    if perturbations:
      deltas = self._zero_perturbations(images)
      for name, delta in perturbations.items():
        key = f"tap_{name}"
        if key not in deltas:
          raise KeyError(f"{self.spec.name} has no tap {name!r}; taps: "
                         f"{', '.join(k[4:] for k in deltas)}")
        deltas[key] = delta
      variables = {**variables, "perturbations": deltas}
    return self.module.apply(variables, self.preprocess(images), train=False)

  def logits(self, images: jnp.ndarray) -> jnp.ndarray:
    """[N, H, W, 3] in [0, 1] -> [N, K] float32 logits."""
    return self.forward(images)[0]

  def probability(self, images: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """The softmax probability of class target[i] for image i: [N].

    target: [N] ints (or one int) in 0..K-1, checked by `validation.check_target`.
    """
    p = jax.nn.softmax(self.logits(images), axis=-1)
    target = validation.check_target(target, p.shape[0], p.shape[-1])
    return jnp.take_along_axis(p, target[:, None], axis=1)[:, 0]

  def taps(self, images: jnp.ndarray) -> tuple[jnp.ndarray, ...]:
    """The 4 generator taps (`tap_names`), without gradient."""
    return self.logits_and_taps(images)[1]

  def logits_and_taps(self, images: jnp.ndarray):
    """(logits [N, K], the 4 generator taps without gradient): one forward pass."""
    logits, features = self.forward(images)
    return logits, tuple(jax.lax.stop_gradient(features[n]) for n in self.tap_names)

  def logits_from_tap(self, images: jnp.ndarray, tap: str | None = None
                      ) -> tuple[jnp.ndarray, Callable[[jnp.ndarray], jnp.ndarray]]:
    """(A, head): the tap's value A for these images and head(A') -> logits.

    head(A') are the logits of the network continued from A' at the tap (the
    layers before the tap run once on `images`), so `jax.grad` of a function
    of head at A is the gradient with respect to the tap (Grad-CAM).
    tap: a feature-map name of the model; default the main flow (stride 32).
    """
    tap = tap or self.tap_names[-1]
    _, features = self.forward(images)
    if tap not in features:
      raise KeyError(f"{self.spec.name} has no tap {tap!r}; taps: "
                     f"{', '.join(features)}")
    value = jax.lax.stop_gradient(features[tap])

    def head(a: jnp.ndarray) -> jnp.ndarray:
      return self.forward(images, {tap: a - value})[0]

    return value, head

  def _zero_perturbations(self, images: jnp.ndarray) -> dict[str, jnp.ndarray]:
    shapes = jax.eval_shape(
        lambda v, x: self.module.apply(v, x, train=False)[1],
        self.variables, jax.ShapeDtypeStruct(images.shape, jnp.float32))
    return {f"tap_{k}": jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}


def _head_size(spec: registry.ClassifierSpec, variables: Variables) -> int:
  """The number of classes: the size of the output layer's bias."""
  try:
    return int(variables["params"][spec.head_name]["bias"].shape[0])
  except (KeyError, TypeError):
    raise ValueError(
        f"the variables have no output layer params/{spec.head_name}/bias: they "
        f"are not {spec.name} variables") from None


# The largest variables `jit_for` compiles in (each program keeps a copy):
# ResNet50's 98 MiB and the smaller networks, not VGG19's 548 MiB.
CONSTANTS_MAX_BYTES = 256 * 2 ** 20


def weights_as_constants(classifier: Classifier | None = None,
                         backend: str | None = None) -> bool:
  """Whether `jit_for` compiles a classifier's variables into its programs:
  on the CPU backend (default `jax.default_backend()`), in one process, for
  variables of at most CONSTANTS_MAX_BYTES. XLA:CPU runs a ResNet50 forward +
  input gradient 1.3x faster with the variables as constants than as
  arguments, with the same results (`benchmarks/bench_xla_cpu_flags.py`,
  docs/benchmarks.md). On GPUs and TPUs they stay arguments (constants would
  copy the weights into every program), and so across processes (their arrays
  cannot be constants) and for larger networks (a copy per program)."""
  if (backend or jax.default_backend()) != "cpu" or jax.process_count() != 1:
    return False
  if classifier is None:
    return True
  size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(classifier.variables))
  return size <= CONSTANTS_MAX_BYTES


def jit_for(fn: Callable, classifier: Classifier, *, constants: bool | None = None,
            **jit_kwargs) -> Callable:
  """`jax.jit(fn)` for calls `fn(classifier, *args, **kwargs)` with this
  classifier, called the same way.

  With `constants` (default `weights_as_constants(classifier)`), the variables of
  `classifier` are compiled into the program; a call with another classifier
  runs `jax.jit(fn)` with it as an argument, so the result is always fn's.
  jit_kwargs go to `jax.jit` (e.g. static_argnames).
  """
  general = jax.jit(fn, **jit_kwargs)
  if constants is None:
    constants = weights_as_constants(classifier)
  if not constants:
    return general
  closed = jax.jit(functools.partial(fn, classifier), **jit_kwargs)

  def call(clf, *args, **kwargs):
    if clf is classifier:
      return closed(*args, **kwargs)
    return general(clf, *args, **kwargs)
  call.closed = closed  # the program with the classifier compiled in
  return call
