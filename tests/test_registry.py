"""The explainer registry's facts about each method and `bind`, and their consumers.

Each registered method carries its display name, its row of the paper's Table
2, whether its map is a mask or an attribution, the generators it needs and its
quick settings; `explainers.bind` binds what was trained. The evaluation runner,
the tables, the explain app and its report read them from there. A random
`tiny_cnn` at 64 px with a random generator: nothing here is about trained
values.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dre_jax import config as config_lib
from dre_jax import explainers
from dre_jax import parallel
from dre_jax.app import loading
from dre_jax.app import page
from dre_jax.app import running
from dre_jax.classifier import Classifier
from dre_jax.estimator import DRE
from dre_jax.evaluation import cache
from dre_jax.evaluation import runner
from dre_jax.evaluation import tables

SIZE = 64
# The paper's Table 2: (method, sensitive hyper-parameters, iterations), in its order.
TABLE_2 = [("DRE", "-", "1"), ("MGnet", "3", "1"), ("MPert", "2", "300"),
           ("FInv", "3", "80"), ("XPert", "-", "300"), ("GCAM", "-", "1"),
           ("GCAM++", "-", "1"), ("VGrad", "-", "1"), ("SMGrad", "1", "50"),
           ("ITGrad", "-", "200")]


@pytest.fixture(scope="module")
def classifier():
  return Classifier.init("tiny_cnn", jax.random.key(0), num_classes=10,
                         image_size=SIZE)


@pytest.fixture(scope="module")
def generators(classifier):
  """Two different random generators: one as DRE's, one as MGnet's."""
  dre = DRE.create("tiny_cnn", 10)
  return (explainers.Generator(dre, dre.init_generator(jax.random.key(1), classifier, SIZE)),
          explainers.Generator(dre, dre.init_generator(jax.random.key(2), classifier, SIZE)))


@pytest.fixture(scope="module")
def batch(classifier):
  images = jax.random.uniform(jax.random.key(3), (2, SIZE, SIZE, 3))
  return images, jnp.argmax(classifier.logits(images), axis=-1).astype(jnp.int32)


# ---------------------------------------------------------------- the facts


def test_every_method_has_a_display_name_and_a_table_2_row():
  rows = []
  for name in explainers.names():
    m = explainers.method(name)
    assert m.display and m.display != name, name
    assert m.output in explainers.OUTPUTS, name
    assert m.table2 is not None, name
    rows.append(m.table2.row)
  assert sorted(rows) == list(range(1, len(rows) + 1))  # one row each


def test_table_2_is_the_papers():
  paper = sorted((m for m in map(explainers.method, explainers.names())
                  if m.table2.row <= 10), key=lambda m: m.table2.row)
  assert [(m.display, m.table2.sensitive, m.table2.iterations)
          for m in paper] == TABLE_2


def test_needs_agree_with_load_and_the_explain_signature():
  assert set(explainers.GENERATORS) <= set(config_lib.OBJECTIVES)
  for name in explainers.names():
    m = explainers.method(name)
    assert set(m.needs) <= set(explainers.GENERATORS), name
    assert (m.load is not None) == bool(m.needs) == m.trained, name
    assert len(m.bound) == 2 * len(m.needs), name
  assert explainers.method("dre").needs == ("dre",)
  assert explainers.method("mgnet").needs == ("mgnet",)
  assert explainers.method("dre+mgnet").needs == ("dre", "mgnet")


def test_masks_and_attributions():
  masks = {n for n in explainers.names() if explainers.method(n).output == "mask"}
  assert {"dre", "mgnet", "dre+self", "dre+mgnet", "mpert", "finv"} == masks


def test_quick_settings_are_valid_and_cheaper():
  cut = 0
  for name in explainers.names():
    quick = explainers.quick_settings(name)
    explainers.check_settings(name, quick)  # a TypeError for an unknown one
    if quick:
      cut += 1
      assert explainers.passes(name, **quick) < explainers.passes(name) / 4, name
  assert cut == 5  # smgrad, itgrad, mpert, xpert, finv
  assert explainers.quick_settings("itgrad", samples=3) == {"steps": 3}
  assert explainers.quick_settings("finv", iterations=10) == {
      "iterations": 10, "inversion_iterations": 5}


def test_register_refuses_inconsistent_metadata():
  def fn(classifier, images, target, key=None, *, estimator, generator_variables):
    return images[..., 0]

  cases = [(dict(needs=("vae",)), "unknown generators"),
           (dict(needs=("dre", "mgnet")), "an estimator and variables for each"),
           (dict(output="heatmap"), "output must be one of")]
  for kwargs, message in cases:
    with pytest.raises(ValueError, match=message):
      explainers.register("test-only", passes=lambda **_: 1.0, reference="-",
                          **kwargs)(fn)
    assert "test-only" not in explainers.names()


# ---------------------------------------------------------------- bind


def test_bind_refuses_a_missing_generator_naming_what_to_train(generators):
  dre, _ = generators
  with pytest.raises(explainers.MissingGenerator,
                     match=r"'mgnet' needs .*MGnet objective.*configs/mgnet.py.*mgnet="):
    explainers.bind("mgnet", dre=dre)
  with pytest.raises(ValueError, match=r"'dre' needs a DRE generator .*dre="):
    explainers.bind("dre")
  with pytest.raises(explainers.MissingGenerator) as err:
    explainers.bind("dre+mgnet", dre=dre)
  assert err.value.missing == ("mgnet",) and "DRE generator" not in str(err.value)
  with pytest.raises(TypeError, match="did you mean 'samples'"):
    explainers.bind("smgrad", settings={"sample": 3})


def test_bind_binds_each_generator_where_the_method_needs_it(generators):
  dre, mgnet = generators
  args = explainers.arguments("dre+mgnet", dre=dre, mgnet=mgnet)
  assert args["generator_variables"] is dre.variables
  assert args["mgnet_variables"] is mgnet.variables
  assert explainers.arguments("mgnet", dre=dre, mgnet=mgnet) == {
      "estimator": mgnet.estimator, "generator_variables": mgnet.variables}
  assert explainers.arguments("vgrad", dre=dre, mgnet=mgnet) == {}


@pytest.mark.parametrize("name,settings", [
    ("mgnet", {}), ("dre", {}), ("smgrad", {"samples": 3, "noise": 0.2})])
def test_bind_equals_get_with_the_same_arguments(name, settings, generators,
                                                 classifier, batch):
  dre, mgnet = generators
  images, target = batch
  key = jax.random.key(4)
  got = jax.jit(explainers.bind(name, dre=dre, mgnet=mgnet, settings=settings))(
      classifier, images, target, key)
  fn = explainers.get(name, **explainers.arguments(name, dre=dre, mgnet=mgnet))
  want = jax.jit(functools.partial(fn, **settings))(classifier, images, target, key)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# ---------------------------------------------------------------- consumers


def _loaded(classifier, generator):
  return runner.Loaded("runs/x", classifier, None, generator)


def test_runner_binds_and_leaves_out_what_is_missing(classifier, generators,
                                                     batch):
  dre, mgnet = generators
  mesh = parallel.make_mesh()
  names = ["dre", "mgnet", "dre+mgnet", "vgrad"]
  methods, notes = runner.build_methods(
      names, False, _loaded(classifier, dre), None, {}, mesh)
  assert [m.name for m in methods] == ["dre", "vgrad"]
  assert len(notes) == 2 and all("config.eval.mgnet_workdir" in n for n in notes)
  assert methods[0].fingerprint == cache.tree_fingerprint(
      {"generator_variables": dre.variables})
  assert methods[1].fingerprint == ""
  with pytest.raises(ValueError, match="'mgnet' needs .*MGnet objective"):
    runner.build_methods(["mgnet"], True, _loaded(classifier, dre), None, {}, mesh)

  methods, notes = runner.build_methods(
      ["mgnet", "dre+mgnet"], True, _loaded(classifier, dre),
      _loaded(classifier, mgnet), {}, mesh)
  assert not notes
  assert methods[1].fingerprint == cache.tree_fingerprint(
      {"generator_variables": dre.variables, "mgnet_variables": mgnet.variables})
  images, target = batch
  np.testing.assert_array_equal(
      np.asarray(methods[0].explain(classifier, images, target, None)),
      np.asarray(explainers.get("mgnet", estimator=mgnet.estimator,
                                generator_variables=mgnet.variables)(
                                    classifier, images, target)))


def test_explain_binds_the_models_generator_as_its_kind(classifier, generators):
  dre, _ = generators
  model = loading.Model(classifier=classifier, dre=dre.estimator,
                        generator_variables=dre.variables, image_size=SIZE,
                        class_names=None, source="runs/x")
  running.compiled_method("dre", model, {})
  with pytest.raises(ValueError, match="mgnet needs an MGnet generator, and "
                     "runs/x has a generator trained with the 'dre' objective: "
                     "train one, dre-train --config=configs/mgnet.py"):
    running.compiled_method("mgnet", model, {})
  mgnet_model = loading.Model(classifier=classifier, dre=dre.estimator,
                              generator_variables=dre.variables,
                              image_size=SIZE, class_names=None,
                              source="runs/m", objective="mgnet")
  running.compiled_method("mgnet", mgnet_model, {})
  with pytest.raises(ValueError, match="dre needs a DRE generator, and runs/m "
                     "has a generator trained with the 'mgnet' objective: run "
                     "`bash scripts/quickstart.sh`"):
    running.compiled_method("dre", mgnet_model, {})
  with pytest.raises(ValueError, match="did you mean 'gcam'"):
    running.compiled_method("gcamm", model, {})
  assert running.runnable_methods(model) == (
      "dre", "mpert", "finv", "xpert", "gcam", "gcam++", "vgrad", "smgrad",
      "itgrad", "dre+self")
  assert running.default_methods(model) == ("dre",)
  assert running.default_methods(mgnet_model) == ("mgnet",)
  bare = dataclasses.replace(model, dre=None, generator_variables=None,
                             objective=None)
  assert running.default_methods(bare) == (
      "mpert", "finv", "xpert", "gcam", "gcam++", "vgrad", "smgrad", "itgrad")
  assert all(not explainers.method(m).needs for m in running.default_methods(bare))


def test_tables_and_report_read_the_registry():
  assert [tables.display_name(n) for n in tables.table2_order(explainers.names())][:10] == [
      row[0] for row in TABLE_2]
  assert tables.display_name("not-registered") == "not-registered"
  saliency = np.linspace(0, 0.5, 100, dtype=np.float32).reshape(10, 10)
  np.testing.assert_array_equal(page.display_map(saliency, "mgnet"), saliency)
  assert page.display_map(saliency, "vgrad").max() == 1.0  # scaled
