"""The authors' released DRE generator (`model-1.ckpt`) rebuilt in PyTorch
with random values: the modules of its layout and a checkpoint written as the
authors wrote it (conftest's `released_dre` fixture)."""

import torch


class _ReleasedBottleneck(torch.nn.Module):
  """The released `follow_up`: 1x1 -> 3x3 -> 1x1 with a biased 1x1 shortcut."""

  def __init__(self, cin, cout):
    super().__init__()
    inner = cout // 4
    self.conv1 = torch.nn.Conv2d(cin, inner, 1, bias=False)
    self.bn1 = torch.nn.BatchNorm2d(inner)
    self.conv2 = torch.nn.Conv2d(inner, inner, 3, padding=1, bias=False)
    self.bn2 = torch.nn.BatchNorm2d(inner)
    self.conv3 = torch.nn.Conv2d(inner, cout, 1, bias=False)
    self.bn3 = torch.nn.BatchNorm2d(cout)
    self.residual_transformer = torch.nn.Conv2d(cin, cout, 1)

  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    y = torch.relu(self.bn2(self.conv2(y)))
    return torch.relu(self.bn3(self.conv3(y)) + self.residual_transformer(x))


class _ReleasedCell(torch.nn.Module):
  """The released `up<i>`: sub-pixel upsampler, concat, bottleneck."""

  def __init__(self, cin, cout, passthrough):
    super().__init__()
    self.upsampler = torch.nn.Sequential(
        torch.nn.Sequential(
            torch.nn.Conv2d(cin, 4 * cout, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(4 * cout), torch.nn.ReLU()),
        torch.nn.PixelShuffle(2), torch.nn.ReLU())
    self.follow_up = _ReleasedBottleneck(cout + passthrough, cout)

  def forward(self, x, passthrough):
    return self.follow_up(torch.cat([self.upsampler(x), passthrough], 1))


class _ReleasedController(torch.nn.Module):
  """The released `to_saliency_chans`; only conv56 is used."""

  def __init__(self):
    super().__init__()
    for name, k, s in (("conv7", 9, 8), ("conv14", 5, 4), ("conv28", 3, 2),
                       ("conv56", 3, 1)):
      setattr(self, name, torch.nn.Conv2d(64, 1, k, s, padding=k // 2))


def write_released_dre(path):
  """(path, modules): a `model-1.ckpt` with the released layout and random
  values written to `path`, and its PyTorch modules."""
  torch.manual_seed(0)
  modules = {
      "up2": _ReleasedCell(2048, 256, 1024),
      "up1": _ReleasedCell(256, 128, 512),
      "up0": _ReleasedCell(128, 64, 256),
      "to_saliency_chans": _ReleasedController(),
      "batchnorm_op": torch.nn.BatchNorm2d(1),
      "relu": torch.nn.ReLU(),
      "selector_module": torch.nn.Embedding(1000, 2048),
  }
  with torch.no_grad():
    for m in modules.values():
      m.eval()
      for bn in m.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
          bn.running_mean.normal_(0, 0.2)
          bn.running_var.uniform_(0.5, 2.0)
          bn.weight.uniform_(0.5, 1.5)
          bn.bias.normal_(0, 0.2)
  # The authors saved with PyTorch 1.1: the legacy format.
  torch.save({name: m.state_dict() for name, m in modules.items()}, path,
             _use_new_zipfile_serialization=False)
  return path, modules
