"""Every config loads and validates; typos and wrong types stop a run early."""

import glob
import os
import sys

from absl import flags
from ml_collections import config_flags
import pytest

from dre_jax import models
from dre_jax import config as config_lib
import training_util
import util

REPO = util.REPO
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))
PAPER = {"cub_resnet", "cub_vgg", "cub_googlenet", "imagenet_resnet",
         "imagenet_vgg", "imagenet_googlenet", "places_resnet", "quickstart",
         "composites_scratch"}


# Configs that need an argument, and the one the tests give them.
DEFAULT_ARGS = {"composites_scratch.py": "resnet50", "folder.py": "path=/photos"}


def _load(path, arg=None):
  arg = ",".join(filter(None, (DEFAULT_ARGS.get(os.path.basename(path)), arg)))
  module = util.load_module(path)
  return module, module.get_config(arg or None)


def _with_weights(config):
  """The ImageNet configs need a weights path to validate."""
  if not (config.model.torch_weights or config.model.checkpoint
          or config.classifier.epochs):
    config.model.torch_weights = "/weights/x.pth"
  return config


def test_every_paper_setting_has_a_config():
  assert {os.path.basename(p)[:-3] for p in CONFIGS} >= PAPER


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_validates_and_documents_itself(path):
  module, config = _load(path)
  config_lib.validate(_with_weights(config))
  doc = module.__doc__
  assert "python train.py --config=configs/" + os.path.basename(path) in doc
  for word in ("Hardware", "Time", "reach"):
    assert word in doc, f"{path}: the docstring must say {word}"
  assert config.model.name in models.names()
  assert config.dataset.image_size % 32 == 0
  # The DRE stages keep the paper's settings (Sec. 4.1).
  assert (config.dre.epochs, config.dre.batch_size) in ((10, 64),) or \
      os.path.basename(path) in ("quickstart.py", "composites_scratch.py",
                                 "ablation_controller.py",  # 3 epochs (Sec. 4.4)
                                 "ablation_constraints.py")
  # MGnet trains with its released optimiser's rate (configs/mgnet.py).
  assert config.dre.learning_rate == (
      1e-3 if os.path.basename(path) == "mgnet.py" else 1e-2)
  assert config.dre.lr_halve_every_epochs == 3
  assert config.dre.backgrounds.blur_prob == 0.5
  assert config.generator.eta == 1.5 and config.generator.h == 2.5
  # :runlocal shrinks the same config and stays valid.
  _, local = _load(path, "runlocal")
  config_lib.validate(_with_weights(local))
  assert local.dataset.image_size <= config.dataset.image_size
  assert local.model.name == config.model.name


def test_paper_configs_pick_their_dataset_and_classifier():
  expected = {"cub_resnet": ("caltech_birds2011", "resnet50", 200),
              "cub_vgg": ("caltech_birds2011", "vgg19", 200),
              "cub_googlenet": ("caltech_birds2011", "googlenet", 200),
              "imagenet_resnet": ("imagenet2012", "resnet50", 1000),
              "imagenet_vgg": ("imagenet2012", "vgg19", 1000),
              "imagenet_googlenet": ("imagenet2012", "googlenet", 1000),
              "places_resnet": ("places365_small", "resnet50", 365)}
  for name, (dataset, arch, classes) in expected.items():
    _, c = _load(os.path.join(REPO, "configs", name + ".py"))
    assert (c.dataset.name, c.model.name, c.dataset.num_classes) == (
        dataset, arch, classes), name
    # ImageNet explains torchvision's classifiers as they are; CUB and
    # Places365 train their own first.
    assert (c.classifier.epochs == 0) == (dataset == "imagenet2012"), name


def test_unknown_and_mistyped_fields_stop_where_they_are_set():
  """The defaults are locked: a typo or a wrong type fails at the assignment."""
  c = config_lib.default_config()
  c.dataset.name, c.model.name = "caltech_birds2011", "resnet50"
  c.model.torch_weights = "/weights/resnet50.pth"
  config_lib.validate(c)
  with pytest.raises(AttributeError, match="learning_rte"):
    c.dre.learning_rte = 1e-3
  with pytest.raises(AttributeError, match="Did you mean.*learning_rate"):
    _ = c.dre.learning_rte
  with pytest.raises(AttributeError, match="embedings"):
    c.embedings = config_lib.ConfigDict({"epochs": 1})
  with pytest.raises(TypeError, match="epochs"):
    c.dre.epochs = "three"
  with pytest.raises(TypeError, match="download"):
    c.dataset.download = 1
  c.dre.learning_rate = 1  # an int where a float is expected is fine
  assert c.dre.learning_rate == 1.0 and isinstance(c.dre.learning_rate, float)


def test_generator_settings_and_stage2_objective():
  c = config_lib.default_config()
  c.dataset.name, c.model.name = "caltech_birds2011", "resnet50"
  c.model.torch_weights = "/weights/resnet50.pth"
  c.generator.upsample, c.generator.widths = "transposed", (8, 16, 32)
  c.dre.objective = "mgnet"
  c.dre.constraints.smoothness = 0.5
  config_lib.validate(c)
  c.dre.objective, c.dre.constraints.area = "gradcam", -1.0
  c.generator.widths = (8, 16)
  c.dataset.boxes_dir = "/boxes"
  with pytest.raises(ValueError) as e:
    config_lib.validate(c)
  for fragment in ("config.dre.objective='gradcam'",
                   "config.dre.constraints.area=-1.0 must be >= 0",
                   "config.generator.widths=(8, 16) must give 3",
                   "config.dataset.boxes_dir is for imagenet2012"):
    assert fragment in str(e.value)


def test_old_workdir_configs_migrate():
  old = {"dre": {"epochs": 3, "upsample": "transposed", "widths": [8, 16, 32],
                 "eta": 1.5, "h": 2.5}, "seed": 1}
  assert config_lib.migrate(old) == {
      "dre": {"epochs": 3}, "seed": 1,
      "generator": {"upsample": "transposed", "widths": [8, 16, 32],
                    "eta": 1.5, "h": 2.5}}
  assert old["dre"]["upsample"] == "transposed"  # the input is not changed


def test_wrong_values_are_errors():
  c = config_lib.default_config()
  c.dataset.name, c.model.name = "caltech_birds2011", "resnet5"
  c.dataset.image_size = 100
  c.classifier.optimizer = "rmsprop"
  with pytest.raises(ValueError) as e:
    config_lib.validate(c)
  message = str(e.value)
  for fragment in ("'resnet5' is not one of", "multiple of 32", "'rmsprop'",
                   "the classifier has no weights"):
    assert fragment in message


def _parse(*args):
  """train.py's flag parsing (config_flags reads the overrides off sys.argv)."""
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values,
                                  lock_config=True)
  argv = ["train.py", *args]
  saved, sys.argv = sys.argv, argv
  try:
    values(argv)
  finally:
    sys.argv = saved
  return values.config


def test_composites_scratch_takes_one_architecture():
  path = os.path.join(REPO, "configs", "composites_scratch.py")
  module, _ = _load(path)
  for arch in ("resnet50", "vgg19", "googlenet", "resnet18"):
    config = module.get_config(arch)
    assert config.model.name == arch
    assert config.classifier.epochs > 0 and not config.model.torch_weights
  with pytest.raises(ValueError, match="choose one classifier"):
    module.get_config()
  with pytest.raises(ValueError, match="unknown config argument"):
    module.get_config("resnet")


def test_command_line_overrides():
  path = os.path.join(REPO, "configs", "cub_resnet.py")
  config = _parse(f"--config={path}", "--config.dre.epochs=3",
                  "--config.dre.backgrounds.blur_prob=0.25",
                  "--config.model.torch_weights=/w.pth")
  assert config.dre.epochs == 3
  assert config.dre.backgrounds.blur_prob == 0.25
  config_lib.validate(config)
  local = _parse(f"--config={path}:runlocal")
  assert local.dataset.image_size == 64
  with pytest.raises(Exception, match="epochz"):
    _parse(f"--config={path}", "--config.dre.epochz=3")
  with pytest.raises(Exception, match="epochs"):
    _parse(f"--config={path}", "--config.dre.epochs=three")
  with pytest.raises(Exception, match="unknown config argument .runlocl."):
    _parse(f"--config={path}:runlocl")


@pytest.mark.slow  # train.py in subprocesses
def test_cli_mistakes_are_one_line(tmp_path):
  """Item 10: a mistyped field, a missing config file and a wrong value."""
  config = os.path.join(REPO, "configs", "cub_resnet.py")
  workdir = str(tmp_path / "wd")
  def train(config, *flags):
    return training_util.run_train(config, workdir, *flags, check=False)
  line = util.one_error_line(train(config, "--config.dre.learning_rte=1"))
  assert "learning_rte" in line and "learning_rate" in line
  line = util.one_error_line(train(str(tmp_path / "nope.py")))
  assert "nope.py" in line
  line = util.one_error_line(train(config, "--config.dataset.image_size=100",
                                   "--config.model.torch_weights=/w.pth"))
  assert "image_size=100 must be a positive multiple of 32" in line
  assert not os.path.exists(workdir)


def test_validate_lists_every_wrong_value():
  c = config_lib.default_config()
  c.dataset.name, c.model.name = "x", "resnet51"
  c.dre.epochs = -1
  with pytest.raises(ValueError) as e:
    config_lib.validate(c)
  assert "'resnet51' is not one of" in str(e.value)
  assert "epochs must be >= 0" in str(e.value)
