"""Each explainer's counterpart in Captum (PyTorch), for benchmarks against it.

    from dre_jax.explainers import captum
    counterpart = captum.COUNTERPARTS["vgrad"]      # Saliency
    counterpart.attribute(net, x, target, layer=net.layer4, samples=10,
                          batch_size=64)            # an NCHW torch tensor

`net` is a torch module taking NCHW images in [0, 1] (its own normalisation
inside), `x` such a batch and `target` its classes. The settings follow each
method's paper and this package's defaults where Captum has the same knob
(SmoothGrad's noise 0.15 of the input range, IG's black baseline and trapezoid
rule, Grad-CAM's ReLU on the last convolutional block `layer`); `samples` is
SmoothGrad's samples and IG's steps, and `batch_size` bounds the images per
pass as the JAX explainers' batches do. Captum and torch are imported only when
a counterpart runs.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Counterpart(NamedTuple):
  """display: Captum's name for it; attribute(net, x, target, *, layer,
  samples, batch_size) -> its attribution."""

  display: str
  attribute: Callable[..., Any]


def _saliency(net, x, target, *, layer, samples, batch_size):
  del layer, samples, batch_size
  from captum.attr import Saliency  # pylint: disable=import-outside-toplevel
  return Saliency(net).attribute(x, target=target)


def _smoothgrad(net, x, target, *, layer, samples, batch_size):
  del layer
  from captum.attr import NoiseTunnel, Saliency  # pylint: disable=import-outside-toplevel
  return NoiseTunnel(Saliency(net)).attribute(
      x, nt_type="smoothgrad", nt_samples=samples, stdevs=0.15, target=target,
      nt_samples_batch_size=max(1, min(samples, batch_size // len(x))))


def _integrated_gradients(net, x, target, *, layer, samples, batch_size):
  del layer
  from captum.attr import IntegratedGradients  # pylint: disable=import-outside-toplevel
  return IntegratedGradients(net).attribute(
      x, baselines=x * 0, target=target, n_steps=samples,
      method="riemann_trapezoid",
      internal_batch_size=min(batch_size, len(x) * samples))


def _grad_cam(net, x, target, *, layer, samples, batch_size):
  del samples, batch_size
  from captum.attr import LayerGradCam  # pylint: disable=import-outside-toplevel
  return LayerGradCam(net, layer).attribute(x, target=target,
                                            relu_attributions=True)


# Registry name -> its Captum counterpart (the methods Captum implements).
COUNTERPARTS = {
    "vgrad": Counterpart("Saliency", _saliency),
    "smgrad": Counterpart("NoiseTunnel(Saliency)", _smoothgrad),
    "itgrad": Counterpart("IntegratedGradients", _integrated_gradients),
    "gcam": Counterpart("LayerGradCam", _grad_cam),
}
