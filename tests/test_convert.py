"""The torch-free checkpoint reader and the PyTorch -> Flax converter.

Checkpoints are written by real `torch.save` (both formats) and compared with
torch's own tensors; converted models are compared with torch forwards.
"""

import dataclasses
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import jax
import ml_dtypes
import numpy as np
import pytest

from dre_jax import generator as gen
from dre_jax import models
from dre_jax.io import classifier_dir
from dre_jax.io import pth
from dre_jax.io import released_dre as released
from dre_jax.io import torch_weights

torch = pytest.importorskip("torch")

TINY = models.get("tiny_cnn")
FORMATS = {"zip": True, "legacy": False}


def _save(obj, path, fmt):
  torch.save(obj, path, _use_new_zipfile_serialization=FORMATS[fmt])
  return path


def _numpy(t):
  if t.dtype == torch.bfloat16:
    return t.float().numpy().astype(ml_dtypes.bfloat16)
  return t.numpy()


# ---------------------------------------------------------------- the reader


@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_dtypes_strides_and_shared_storage(tmp_path, fmt):
  g = torch.Generator().manual_seed(0)
  base = torch.randn(6, 5, generator=g)
  tensors = {
      "float32": torch.randn(3, 4, 2, generator=g),
      "float16": torch.randn(7, generator=g).half(),
      "bfloat16": torch.randn(2, 3, generator=g).bfloat16(),
      "float64": torch.randn(4, generator=g).double(),
      "int64": torch.arange(-5, 7),
      "int32": torch.arange(3, dtype=torch.int32),
      "uint8": torch.arange(250, 256, dtype=torch.uint8),
      "bool": torch.tensor([True, False, True]),
      "scalar": torch.tensor(3.5),
      "empty": torch.zeros(0, 3),
      "transposed": base.t(),               # strides (1, 5)
      "offset_slice": base[2:4, 1:4],        # offset 11, strides (5, 1)
      "base": base,                          # same storage as the two above
      "every_other": torch.arange(20.0)[::3],
      "parameter": torch.nn.Parameter(torch.ones(2, 2)),
  }
  loaded = pth.load_checkpoint(_save(tensors, tmp_path / "t.pth", fmt))
  assert list(loaded) == list(tensors)
  for key, t in tensors.items():
    expected = _numpy(t.detach())
    assert loaded[key].dtype == expected.dtype, key
    assert loaded[key].shape == expected.shape, key
    np.testing.assert_array_equal(loaded[key], expected, err_msg=key)
  assert loaded["transposed"].flags.c_contiguous


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_dicts_and_state_dicts(tmp_path, fmt):
  net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
  tree = {"state_dict": net.state_dict(), "epoch": 7, "tags": ["a", (1, 2.5)],
          "aux": {"fc.weight": torch.ones(2, 3)}}
  path = _save(tree, tmp_path / "nested.ckpt", fmt)

  loaded = pth.load_checkpoint(path)
  assert loaded["epoch"] == 7 and loaded["tags"] == ["a", (1, 2.5)]
  sd = pth.load_state_dict(path, key="state_dict")
  assert list(sd) == list(net.state_dict())
  for key, t in net.state_dict().items():
    np.testing.assert_array_equal(sd[key], t.numpy())
  assert sd["1.num_batches_tracked"].dtype == np.int64

  with pytest.raises(pth.CheckpointFormatError, match="nests dicts under"):
    pth.load_state_dict(path)
  with pytest.raises(KeyError, match="top-level entries"):
    pth.load_state_dict(path, key="model")
  with pytest.raises(pth.CheckpointFormatError, match="non-tensor entries"):
    pth.load_state_dict(_save({"w": torch.ones(1), "step": 3},
                              tmp_path / "mixed.pth", fmt))


def test_zip_prefix_is_whatever_the_writer_chose(tmp_path):
  src = _save({"w": torch.arange(4.0)}, tmp_path / "a.pth", "zip")
  renamed = tmp_path / "b.pth"
  with zipfile.ZipFile(src) as zin, zipfile.ZipFile(renamed, "w") as zout:
    for info in zin.infolist():
      _, rest = info.filename.split("/", 1)
      zout.writestr("my_model/" + rest, zin.read(info))
  np.testing.assert_array_equal(pth.load_checkpoint(renamed)["w"],
                                np.arange(4.0, dtype=np.float32))


class _Exploit:
  """Pickles as a call of os.system: what a malicious checkpoint does."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f"touch {self.marker}",)


def _not_a_checkpoint(tmp_path, kind):
  path = tmp_path / kind
  if kind == "random_bytes":
    path.write_bytes(np.random.default_rng(0).bytes(4096))
  elif kind == "text":
    path.write_text("conv1.weight: [[1, 2], [3, 4]]\n")
  elif kind == "empty":
    path.write_bytes(b"")
  elif kind == "plain_pickle":
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
  elif kind in ("truncated_zip", "truncated_legacy"):
    fmt = kind.split("_")[1]
    full = _save({"w": torch.randn(1000)}, tmp_path / "full", fmt).read_bytes()
    path.write_bytes(full[:len(full) // 2])
  return path


@pytest.mark.parametrize("kind,problem", [
    ("random_bytes", "neither a zip archive"),
    ("text", "neither a zip archive"),
    ("empty", "neither a zip archive"),
    ("plain_pickle", "no torch magic number"),
    ("truncated_zip", "truncated or corrupt"),
    ("truncated_legacy", "truncated"),
    ("missing", "no such file"),
])
def test_not_a_checkpoint_is_a_clear_error(tmp_path, kind, problem):
  path = _not_a_checkpoint(tmp_path, kind)
  with pytest.raises(pth.CheckpointFormatError, match=problem) as info:
    pth.load_checkpoint(path)
  assert str(path) in str(info.value)
  assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("fmt", FORMATS)
def test_malicious_pickle_global_is_refused(tmp_path, fmt):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pth"
  payload = pickle.dumps({"w": _Exploit(marker)}, protocol=2)
  if fmt == "zip":
    with zipfile.ZipFile(path, "w") as zf:
      zf.writestr("archive/data.pkl", payload)
  else:
    path.write_bytes(pickle.dumps(pth._LEGACY_MAGIC, protocol=2)
                     + pickle.dumps(1001, protocol=2)
                     + pickle.dumps({"little_endian": True}, protocol=2)
                     + payload)
  with pytest.raises(pth.CheckpointFormatError,
                     match=r"global (posix|os)\.system.*refusing"):
    pth.load_checkpoint(path)
  assert not marker.exists()


# ------------------------------------------------------------- the converter


class TorchTinyCNN(torch.nn.Module):
  """The PyTorch twin of `dre_jax.models.tiny.TinyCNN`."""

  def __init__(self, num_classes, widths=(16, 32, 64, 128)):
    super().__init__()
    c = 3
    for i, w in enumerate(widths):
      setattr(self, f"conv{i + 1}", torch.nn.Conv2d(
          c, w, 3, 4 if i == 0 else 2, 1, bias=False))
      setattr(self, f"bn{i + 1}", torch.nn.BatchNorm2d(w))
      c = w
    self.fc = torch.nn.Linear(c, num_classes)

  def forward(self, x):
    for i in range(1, 5):
      x = torch.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
    return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def tiny_torch():
  torch.manual_seed(0)
  net = TorchTinyCNN(num_classes=7).eval()
  with torch.no_grad():
    for i in range(1, 5):  # non-trivial BN statistics
      bn = getattr(net, f"bn{i}")
      bn.running_mean.normal_()
      bn.running_var.uniform_(0.5, 2.0)
      bn.weight.normal_()
      bn.bias.normal_()
  return net


def _images(n=2, size=64):
  return np.random.default_rng(1).normal(size=(n, size, size, 3)).astype(
      np.float32)


def _torch_logits(net, x):
  with torch.no_grad():
    return net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()


def _flax_logits(spec, variables, num_classes, x):
  logits, _ = spec.build(num_classes).apply(variables, x, train=False)
  return np.asarray(logits)


@pytest.mark.parametrize("fmt", FORMATS)
def test_converted_tiny_cnn_matches_torch(tmp_path, tiny_torch, fmt):
  path = _save(tiny_torch.state_dict(), tmp_path / "tiny.pth", fmt)
  variables = torch_weights.torch_to_flax(TINY, pth.load_state_dict(path))
  assert variables["params"]["fc"]["kernel"].shape == (128, 7)  # inferred
  assert variables["params"]["conv1"]["kernel"].shape == (3, 3, 3, 16)
  x = _images()
  np.testing.assert_allclose(_flax_logits(TINY, variables, 7, x),
                             _torch_logits(tiny_torch, x), atol=1e-5)


def _numpy_state_dict(net):
  return {k: v.numpy() for k, v in net.state_dict().items()}


def test_every_problem_is_listed_in_one_error(tiny_torch):
  sd = _numpy_state_dict(tiny_torch)
  del sd["bn2.running_var"]
  sd["conv3.weight"] = np.zeros((64, 33, 3, 3), np.float32)
  sd["head.extra.weight"] = np.zeros(3, np.float32)
  with pytest.raises(ValueError) as info:
    torch_weights.torch_to_flax(TINY, sd, num_classes=7)
  message = str(info.value)
  assert "3 problems" in message
  assert "missing key bn2.running_var" in message
  assert ("shape mismatch for conv3.weight: checkpoint has (64, 33, 3, 3), "
          "model expects (64, 32, 3, 3)") in message
  assert "unexpected key head.extra.weight" in message
  assert "num_batches_tracked" not in message


def test_wrong_num_classes_and_ignored_prefixes(tiny_torch):
  sd = _numpy_state_dict(tiny_torch)
  with pytest.raises(ValueError, match=r"fc.weight: checkpoint has \(7, 128\)"
                     r", model expects \(5, 128\)"):
    torch_weights.torch_to_flax(TINY, sd, num_classes=5)
  sd["aux1.fc.weight"] = np.zeros((2, 2), np.float32)
  with pytest.raises(ValueError, match="unexpected key aux1.fc.weight"):
    torch_weights.torch_to_flax(TINY, sd)
  spec = dataclasses.replace(TINY, torch_ignore=("aux1.",))
  torch_weights.torch_to_flax(spec, sd)  # no error
  del sd["fc.weight"], sd["fc.bias"]
  with pytest.raises(ValueError, match="cannot infer num_classes"):
    torch_weights.torch_to_flax(TINY, sd)


def test_save_load_roundtrip_and_errors(tmp_path, tiny_torch):
  variables = torch_weights.torch_to_flax(TINY, _numpy_state_dict(tiny_torch))
  out = classifier_dir.save_classifier(tmp_path / "tiny", "tiny_cnn", 7, variables)
  assert json.loads((tmp_path / "tiny" / "classifier.json").read_text()) == {
      "arch": "tiny_cnn", "num_classes": 7}

  classifier = classifier_dir.load_classifier(out)
  spec, module, restored = (classifier.spec, classifier.module,
                            classifier.variables)
  assert spec is TINY and module.num_classes == 7
  jax.tree.map(np.testing.assert_array_equal, restored, variables)
  x = _images(1)
  np.testing.assert_allclose(np.asarray(module.apply(restored, x)[0]),
                             _torch_logits(tiny_torch, x), atol=1e-5)

  with pytest.raises(FileExistsError, match="already holds"):
    classifier_dir.save_classifier(out, "tiny_cnn", 7, variables)
  with pytest.raises(KeyError, match="unknown classifier"):
    classifier_dir.save_classifier(tmp_path / "x", "no_such_net", 7, variables)
  with pytest.raises(FileNotFoundError, match="not a classifier directory"):
    classifier_dir.load_classifier(tmp_path / "nowhere")
  broken = tmp_path / "broken"
  shutil.copytree(out, broken)
  (broken / "classifier.json").write_text("{arch")
  with pytest.raises(ValueError, match="classifier.json is damaged"):
    classifier_dir.load_classifier(broken)
  (broken / "classifier.json").write_text(
      json.dumps({"arch": "tiny_cnn", "num_classes": 7}))
  shutil.rmtree(broken / "variables")
  with pytest.raises(ValueError, match="variables is missing; delete"):
    classifier_dir.load_classifier(broken)


@pytest.mark.slow  # the converter in subprocesses
def test_cli_end_to_end(tmp_path, tiny_torch):
  weights = _save(tiny_torch.state_dict(), tmp_path / "tiny.pth", "legacy")
  out = tmp_path / "converted"
  command = [sys.executable, "-m", "dre_jax.cli.convert", "--arch",
             "tiny_cnn", "--torch_weights", str(weights), "--out", str(out)]
  run = subprocess.run(command, capture_output=True, text=True, check=False)
  assert run.returncode == 0, run.stderr
  assert f"wrote {out}: tiny_cnn with 7 classes" in run.stdout
  classifier = classifier_dir.load_classifier(out)
  module, variables = classifier.module, classifier.variables
  x = _images(1)
  np.testing.assert_allclose(np.asarray(module.apply(variables, x)[0]),
                             _torch_logits(tiny_torch, x), atol=1e-5)

  bad = subprocess.run(command[:-1] + [str(tmp_path / "bad"),
                                       "--num-classes", "5"],
                       capture_output=True, text=True, check=False)
  assert bad.returncode != 0
  assert "shape mismatch for fc.weight" in bad.stderr
  assert not (tmp_path / "bad" / "classifier.json").exists()


def _convert_cli(*args):
  return subprocess.run(
      [sys.executable, "-W", "error::RuntimeWarning", "-m",
       "dre_jax.cli.convert", *map(str, args)],
      capture_output=True, text=True, check=False,
      env={**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"})


def _error_line(run):
  """The CLI's error: one line, no traceback (issue 9 item 11)."""
  lines = [l for l in run.stderr.splitlines()
           if l.startswith("python -m dre_jax.cli.convert: error:")]
  assert run.returncode == 2, run.stderr
  assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
  return lines[0]


@pytest.mark.slow  # the converter in a subprocess
def test_cli_data_parallel_prefix_is_removed(tmp_path, tiny_torch):
  """A DataParallel checkpoint (every key "module.") converts, and says so."""
  wrapped = {f"module.{k}": v for k, v in tiny_torch.state_dict().items()}
  weights = _save(wrapped, tmp_path / "dp.pth", "zip")
  run = _convert_cli("--arch", "tiny_cnn", "--torch-weights", weights,
                     "--out", tmp_path / "out")
  assert run.returncode == 0, run.stderr
  assert "removed the 'module.' prefix" in run.stdout
  assert "tiny_cnn with 7 classes" in run.stdout
  assert "RuntimeWarning" not in run.stderr  # python -m runs it once
  variables = classifier_dir.load_classifier(tmp_path / "out").variables
  x = _images(1)
  np.testing.assert_allclose(_flax_logits(TINY, variables, 7, x),
                             _torch_logits(tiny_torch, x), atol=1e-5)


@pytest.mark.slow  # the converter in subprocesses
def test_cli_errors_name_the_fix(tmp_path, tiny_torch):
  nested = _save({"state_dict": tiny_torch.state_dict(), "epoch": 3},
                 tmp_path / "nested.pth", "zip")
  line = _error_line(_convert_cli("--arch", "tiny_cnn", "--torch-weights",
                                  nested, "--out", tmp_path / "a"))
  assert "--state-dict-key=state_dict" in line
  run = _convert_cli("--arch", "tiny_cnn", "--torch-weights", nested,
                     "--state-dict-key", "state_dict", "--out", tmp_path / "b")
  assert run.returncode == 0, run.stderr

  # Weights of another registered architecture: the error names it.
  weights = _save(tiny_torch.state_dict(), tmp_path / "tiny.pth", "zip")
  line = _error_line(_convert_cli("--arch", "resnet18", "--torch-weights",
                                  weights, "--out", tmp_path / "c"))
  assert "fit the registered architecture tiny_cnn: use --arch tiny_cnn" in line
  assert len(line) < 2000  # the problems are counted, not all listed
  line = _error_line(_convert_cli("--arch", "resnet18", "--torch-weights",
                                  weights, "--num-classes", "7",
                                  "--out", tmp_path / "c"))
  assert "and 1" in line and "more" in line and "tiny_cnn" in line

  # A whole pickled model is refused without running its code.
  whole = tmp_path / "model.pth"
  torch.save(tiny_torch, whole)
  line = _error_line(_convert_cli("--arch", "tiny_cnn", "--torch-weights",
                                  whole, "--out", tmp_path / "d"))
  assert "torch.save(model.state_dict(), path)" in line
  assert not (tmp_path / "d").exists()

  # An existing complete output is kept.
  line = _error_line(_convert_cli("--arch", "tiny_cnn", "--torch-weights",
                                  nested, "--state-dict-key", "state_dict",
                                  "--out", tmp_path / "b"))
  assert "already holds a classifier" in line


def test_interrupted_save_is_replaced(tmp_path, tiny_torch):
  """variables/ written, classifier.json not (a kill between the two): the
  directory is incomplete, and the next save replaces it (issue 9 item 4)."""
  variables = torch_weights.torch_to_flax(TINY, _numpy_state_dict(tiny_torch))
  out = classifier_dir.save_classifier(tmp_path / "c", "tiny_cnn", 7, variables)
  os.remove(os.path.join(out, "classifier.json"))
  assert not classifier_dir.is_complete(out)
  with pytest.raises(FileNotFoundError, match="not a classifier directory"):
    classifier_dir.load_classifier(out)
  classifier_dir.save_classifier(out, "tiny_cnn", 7, variables)
  restored = classifier_dir.load_classifier(out).variables
  jax.tree.map(np.testing.assert_array_equal, restored, variables)


# ------------------------------------------ the authors' released generator


def test_released_keys_follow_the_notes():
  assert released.released_key(
      ("params", "cell0", "upsampler_conv", "kernel")) == \
      "up2.upsampler.0.0.weight"
  assert released.released_key(
      ("batch_stats", "cell2", "follow_up", "bn3", "var")) == \
      "up0.follow_up.bn3.running_var"
  assert released.released_key(
      ("params", "spatial_filter", "embedding")) == "selector_module.weight"
  assert released.released_key(
      ("params", "to_saliency", "bias")) == "to_saliency_chans.conv56.bias"


@pytest.mark.slow  # parity with the released PyTorch generator
def test_released_generator_matches_its_torch_forward(released_dre):
  path, modules = released_dre
  variables = released.import_released_dre(path)
  np.testing.assert_array_equal(
      variables["params"]["spatial_filter"]["embedding"],
      modules["selector_module"].weight.detach().numpy())

  rng = np.random.default_rng(2)
  taps = [np.maximum(rng.normal(size=(2, 64 // s, 64 // s, c)), 0).astype(
      np.float32) for s, c in zip((4, 8, 16, 32), (256, 512, 1024, 2048))]
  target = np.array([3, 998], np.int32)
  module = gen.MaskGenerator(1000, released.RELEASED_WIDTHS)
  x = np.asarray(module.apply(variables, taps, target, train=False))

  f4, f8, f16, f32 = (torch.from_numpy(t.transpose(0, 3, 1, 2)) for t in taps)
  with torch.no_grad():  # the released SaliencyModel.forward, up to X
    em = modules["selector_module"](torch.from_numpy(target).long())
    main = f32 * torch.sigmoid((f32 * em[:, :, None, None]).sum(1, True))
    main = modules["up2"](main, f16)
    main = modules["up1"](main, f8)
    main = modules["up0"](main, f4)
    expected = modules["to_saliency_chans"].conv56(main)[:, 0].numpy()
  assert x.shape == expected.shape == (2, 16, 16)
  np.testing.assert_allclose(x, expected, atol=1e-4 * np.abs(expected).max())


def test_released_checkpoint_errors(tmp_path):
  not_nested = _save({"w": torch.ones(2)}, tmp_path / "flat.ckpt", "zip")
  with pytest.raises(pth.CheckpointFormatError,
                     match="not a released DRE checkpoint"):
    released.import_released_dre(not_nested)
  partial = {name: {} for name in ("up2", "up1", "up0", "to_saliency_chans")}
  partial["selector_module"] = {"weight": torch.zeros(5, 2048)}
  path = _save(partial, tmp_path / "partial.ckpt", "zip")
  with pytest.raises(ValueError, match="missing key up1.upsampler.0.0.weight"):
    released.import_released_dre(path)
