"""dre_jax.evaluation.workdir_config: the config an evaluation of a workdir runs with."""

import json

import pytest

from dre_jax import config as config_lib
from dre_jax.evaluation import workdir_config


def _workdir(tmp_path, **groups):
  (tmp_path / "config.json").write_text(json.dumps(groups))
  return str(tmp_path)


def test_saved_config_with_overrides(tmp_path):
  workdir = _workdir(
      tmp_path, dataset={"name": "tuxpaint_composites/coarse_64",
                         "image_size": 64, "not_a_field": 1},
      model={"name": "tiny_cnn"}, eval={"methods": "dre,gcam", "settings": ["a.b=1"]})
  config = workdir_config.for_workdir(workdir)
  assert config.dataset.name == "tuxpaint_composites/coarse_64"
  assert config.model.name == "tiny_cnn"
  assert config.eval.methods == "dre,gcam"
  assert config.eval.settings == ("a.b=1",)  # JSON lists back to tuples
  assert "not_a_field" not in config.dataset
  config = workdir_config.for_workdir(workdir, methods="vgrad", num_images=8,
                                      split=None, boxes_dir="/boxes",
                                      settings=["a.b=2", "c.d='x'"])
  assert (config.eval.methods, config.eval.num_images) == ("vgrad", 8)
  assert config.eval.settings == ("a.b=1", "a.b=2", "c.d='x'")  # the last wins
  assert config.eval.split == config_lib.default_config().eval.split
  assert config.dataset.boxes_dir == "/boxes"
  with pytest.raises(TypeError, match="unknown overrides \\['method'\\]"):
    workdir_config.for_workdir(workdir, method="dre")


def test_a_given_config_and_its_differences(tmp_path):
  workdir = _workdir(tmp_path, dataset={"name": "caltech_birds2011"},
                     model={"name": "tiny_cnn"})
  given = config_lib.default_config()
  given.model.name = "tiny_cnn"
  given.dataset.name = "tuxpaint_composites/coarse_64"
  given.dataset.image_size = 64
  given.model.checkpoint = "/weights/tiny"
  config = workdir_config.for_workdir(workdir, given, num_images=4)
  assert config.dataset.name == "tuxpaint_composites/coarse_64"
  assert config.eval.num_images == 4 and given.eval.num_images == 0  # a copy
  assert workdir_config.differences(workdir, config) == [
      f"--config has dataset.name='tuxpaint_composites/coarse_64', {workdir} "
      "was trained with 'caltech_birds2011'"]
  assert workdir_config.differences(str(tmp_path / "elsewhere"), config) == []


def test_missing_or_damaged_config_json(tmp_path):
  with pytest.raises(FileNotFoundError, match="has no config.json; pass the "
                     "config it was trained with"):
    workdir_config.saved(str(tmp_path))
  (tmp_path / "config.json").write_text("{dataset")
  with pytest.raises(ValueError, match="config.json is damaged"):
    workdir_config.saved(str(tmp_path))
