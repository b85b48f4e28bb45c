"""scripts/gpu/bench.py's helpers that decide what a GPU run measures."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import pytest

from dre_jax.models import layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench():
  path = os.path.join(ROOT, "scripts", "gpu", "bench.py")
  spec = importlib.util.spec_from_file_location("gpu_bench", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_arch_spec_names_the_depthwise_form(bench):
  assert bench._arch_and_depthwise("efficientnet_lite0@slices") == (
      "efficientnet_lite0", "slices")
  assert bench._arch_and_depthwise("resnet50") == ("resnet50", "auto")


@pytest.mark.parametrize("impl,grouped", [("grouped", True), ("slices", False)])
def test_forced_form_is_what_jit_traces(bench, impl, grouped):
  """The forced form reaches the traced program, whatever the backend's default."""
  module = layers.DepthwiseConv(3, 1)
  x = jnp.ones((1, 8, 8, 4))
  variables = module.init(jax.random.key(0), x)
  fn = bench._with_depthwise(lambda x: module.apply(variables, x), impl)
  text = str(jax.make_jaxpr(fn)(x))
  assert ("feature_group_count=4" in text) == grouped
  # Outside the traced call the backend's default is back.
  assert layers.depthwise_impl() == layers.depthwise_impl("auto")
