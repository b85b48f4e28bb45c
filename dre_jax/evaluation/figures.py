"""The paper's figures as PNGs (matplotlib), each written atomically.

The controller (no trained model needed; `controller_figures(directory)`):

* `fig5_controller_pdfs`: Fig. 5 (a)-(d), p(z) of Eq. 8 for h = 1 and varying
  eta (a), and for eta = 0.5 (b), 2.5 (c), 1.5 (d) with varying h;
* `fig6_other_distributions`: Fig. 6, samples of a uniform, a mixture of two
  normals and a skew normal before (top) and after (bottom) the controller,
  with their skewness and the densities of Appendix B drawn over the histograms;
* `fig13_uniform`, `fig14_skew_normal`, `fig15_mixtures`: Appendix B's curves
  (Eqs. 26, 29, 32).

An evaluation (`dre_jax.evaluation.report`):

* `saliency_grid`: images and one column per method, like Figs. 7-9 and 11,
  with the per-image normalised M_F of each method as a heat map beside it
  (Sec. 4.2.2); rows titled with the explained (predicted) class and the label;
* `mean_curves`: the mean insertion curve (Q_i vs i Delta, Eq. 10) per method;
* `workdir_grid`: one row per workdir (an ablation setting) with the Eq. 8
  density of its controller and its masks of the same images, like Fig. 10
  (b) and (c).
"""

from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np

from dre_jax import atomic
from dre_jax import controller
from dre_jax import metrics
from dre_jax.evaluation import distributions as dist_lib

_Z = np.linspace(1e-4, 1 - 1e-4, 2000)


def _plt():
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def _save(fig, path: str) -> str:
  """Writes the figure as a PNG, atomically, and closes it."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
  _plt().close(fig)
  atomic.write_atomic(path, buffer.getvalue())
  return path


# ------------------------------------------------------------------ controller

def fig5_controller_pdfs(path: str) -> str:
  """Fig. 5: p(z) of Eq. 8 for the settings of Sec. 3.4.2."""
  plt = _plt()
  fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
  panels = [("(a) h = 1", [(eta, 1.0) for eta in (0.5, 1.0, 1.5, 2.0, 2.5)], "eta"),
            ("(b) eta = 0.5", [(0.5, h) for h in (0.5, 1.0, 1.5, 2.0, 2.5)], "h"),
            ("(c) eta = 2.5", [(2.5, h) for h in (0.5, 1.0, 1.5, 2.0, 2.5)], "h"),
            ("(d) eta = 1.5", [(1.5, h) for h in (0.5, 1.0, 1.5, 2.0, 2.5)], "h")]
  for ax, (title, settings, varied) in zip(axes, panels):
    for eta, h in settings:
      ax.plot(_Z, controller.controlled_pdf(_Z, eta, h),
              label=f"{varied} = {eta if varied == 'eta' else h:g}")
    ax.set_ylim(0, 4)
    ax.set_xlabel("z")
    ax.set_title(title)
    ax.legend(fontsize=7)
  axes[0].set_ylabel("p(z), Eq. 8")
  return _save(fig, path)


def _cos(samples: np.ndarray) -> str:
  z = np.asarray(samples, np.float64)[None]
  return (f"CoS {float(controller.skewness(z)[0]):.2f} "
          f"(median {float(np.asarray(metrics.median_skewness(z))[0]):.2f})")


def fig6_other_distributions(path: str, num_samples: int = 40_000,
                             seed: int = 0) -> str:
  """Fig. 6: the controller (eta 1.5, h 2.5) on uniform, mixture, skew normal data."""
  plt = _plt()
  cases = [dist_lib.uniform(0, 1), dist_lib.normal_mixture(0.3, (0, 4)),
           dist_lib.skew_normal(-5.0)]
  rng = np.random.default_rng(seed)
  fig, axes = plt.subplots(2, len(cases), figsize=(4.2 * len(cases), 6.4))
  for j, d in enumerate(cases):
    x = d.sample(rng, num_samples)
    z = dist_lib.apply_controller(x)
    grid = np.linspace(x.min(), x.max(), 400)
    axes[0, j].hist(x, bins=80, density=True, color="0.7")
    axes[0, j].plot(grid, d.pdf(grid), "k")
    axes[0, j].set_title(f"{d.name}\n{_cos(x)}", fontsize=9)
    axes[1, j].hist(z, bins=80, range=(0, 1), density=True, color="tab:orange",
                    alpha=0.6)
    axes[1, j].plot(_Z, dist_lib.controlled_density(d, _Z), "k")
    axes[1, j].set_title(f"after the controller\n{_cos(z)}", fontsize=9)
    axes[1, j].set_xlabel("z")
    axes[1, j].set_ylim(0, 5)  # the densities peak far higher near z = 0
  fig.subplots_adjust(hspace=0.45)
  return _save(fig, path)


def fig13_uniform(path: str) -> str:
  """Fig. 13: Eq. 26, the controller's output density for uniform input."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(4.5, 3.4))
  ax.plot(_Z, dist_lib.controlled_density(dist_lib.uniform(0, 1), _Z))
  lo = (np.exp(np.sqrt(3) * controller.ETA) + 1) ** -controller.H
  hi = (np.exp(-np.sqrt(3) * controller.ETA) + 1) ** -controller.H
  ax.set_ylim(0, 5)
  ax.set_title(f"uniform input: support ({lo:.4f}, {hi:.3f})", fontsize=9)
  ax.set_xlabel("z")
  ax.set_ylabel("p(z), Eq. 26")
  return _save(fig, path)


def _before_after(path: str, rows: list[tuple[str, list[dist_lib.Distribution]]],
                  ylabel: str) -> str:
  plt = _plt()
  fig, axes = plt.subplots(len(rows), 2, figsize=(9, 3.0 * len(rows)),
                           squeeze=False)
  for (title, dists), (ax_x, ax_z) in zip(rows, axes):
    for d in dists:
      grid = np.linspace(d.mean - 4 * d.std, d.mean + 4 * d.std, 600)
      ax_x.plot(grid, d.pdf(grid), lw=1,
                label=d.name.split(", ")[0].split(" ")[-1])
      ax_z.plot(_Z, dist_lib.controlled_density(d, _Z), lw=1)
    ax_x.set_title(f"{title}: input p(x)", fontsize=9)
    ax_z.set_title(f"{title}: after the controller p(z)", fontsize=9)
    ax_z.set_ylim(0, 6)
    ax_z.set_ylabel(ylabel)
    ax_x.legend(fontsize=6, ncol=2)
  fig.subplots_adjust(hspace=0.45)
  return _save(fig, path)


def fig14_skew_normal(path: str) -> str:
  """Fig. 14: Eq. 29 for skew normals with a from -20 to 20."""
  dists = [dist_lib.skew_normal(a) for a in (-20, -10, -5, -2, 0, 2, 5, 10, 20)]
  return _before_after(path, [("skew normal", dists)], "p(z), Eq. 29")


def fig15_mixtures(path: str) -> str:
  """Fig. 15: Eq. 32 for mixtures (sigma 1, mu1 = 0), mu2 in {2, 4, 8, 16}."""
  rows = [(f"({'abcd'[i]}) mu2 = {mu2}",
           [dist_lib.normal_mixture(r1 / 10, (0.0, float(mu2)))
            for r1 in range(1, 10)])
          for i, mu2 in enumerate((2, 4, 8, 16))]
  return _before_after(path, rows, "p(z), Eq. 32")


def controller_figures(directory: str) -> list[str]:
  """All controller figures into `directory`; returns their paths."""
  return [fig5_controller_pdfs(os.path.join(directory, "fig5_controller_pdfs.png")),
          fig6_other_distributions(os.path.join(directory, "fig6_other_distributions.png")),
          fig13_uniform(os.path.join(directory, "fig13_uniform.png")),
          fig14_skew_normal(os.path.join(directory, "fig14_skew_normal.png")),
          fig15_mixtures(os.path.join(directory, "fig15_mixtures.png"))]


# ------------------------------------------------------------------ evaluation

def saliency_grid(path: str, images: np.ndarray, maps: dict[str, np.ndarray],
                  row_titles: Sequence[str], scores: np.ndarray | None = None,
                  box_masks: np.ndarray | None = None,
                  score_name: str = "normalised M_F") -> str:
  """Figs. 7-9 and 11: rows of (image, one saliency map per method) + heat map.

  images: [R, H, W, 3] in [0, 1] (or uint8); maps: {method: [R, H, W]} (each
  map is min-max scaled for display; red high, blue low); scores: [R, M] drawn
  as the heat map of Sec. 4.2.2 (one cell per image and method, in the maps'
  column order); box_masks: [R, H, W] drawn as a contour on the images.
  """
  plt = _plt()
  names = list(maps)
  rows, cols = len(images), len(names) + 1 + (scores is not None)
  widths = [1.0] * (len(names) + 1) + ([0.25 * len(names)] if scores is not None else [])
  fig, axes = plt.subplots(rows, cols, figsize=(1.7 * sum(widths), 1.8 * rows),
                           squeeze=False, gridspec_kw={"width_ratios": widths})
  images = np.asarray(images)
  if images.dtype == np.uint8:
    images = images.astype(np.float32) / 255
  for r in range(rows):
    ax = axes[r, 0]
    ax.imshow(np.clip(images[r], 0, 1))
    if box_masks is not None:
      ax.contour(box_masks[r], levels=[0.5], colors="yellow", linewidths=0.8)
    ax.set_ylabel(row_titles[r], fontsize=7, rotation=0, ha="right", va="center")
    for c, name in enumerate(names):
      m = np.asarray(maps[name][r], np.float32)
      lo, hi = np.nanmin(m), np.nanmax(m)
      axes[r, c + 1].imshow((m - lo) / (hi - lo) if hi > lo else m * 0,
                            cmap="jet", vmin=0, vmax=1)
      if r == 0:
        axes[r, c + 1].set_title(name, fontsize=9)
    if scores is not None:
      ax = axes[r, -1]
      ax.imshow(np.asarray(scores[r], np.float32)[:, None], cmap="RdYlBu_r",
                vmin=0, vmax=100, aspect="auto")
      for c, v in enumerate(scores[r]):
        ax.text(0, c, "-" if np.isnan(v) else f"{v:.0f}", ha="center",
                va="center", fontsize=6)
      ax.set_yticks(range(len(names)))
      ax.set_yticklabels(names, fontsize=5)
      ax.yaxis.tick_right()
      if r == 0:
        ax.set_title(score_name, fontsize=7)
    for ax in axes[r]:
      ax.set_xticks([])
      if ax is not axes[r, -1] or scores is None:
        ax.set_yticks([])
  fig.subplots_adjust(wspace=0.05, hspace=0.08)
  return _save(fig, path)


def mean_curves(path: str, curves: dict[str, np.ndarray],
                title: str = "") -> str:
  """Mean insertion curves: {method: [m + 1] mean Q_i} against i Delta (Eq. 10)."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for name, curve in curves.items():
    curve = np.asarray(curve)
    ax.plot(np.linspace(0, 1, len(curve)), curve, label=name)
  ax.set_xlabel("fraction of clean pixels (top-ranked first)")
  ax.set_ylabel("mean probability of the explained class")
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
  return _save(fig, path)


def workdir_grid(path: str, row_labels: Sequence[str],
                 controllers: Sequence[tuple[float, float] | None],
                 images: np.ndarray, maps: Sequence[np.ndarray]) -> str:
  """Fig. 10 (b)/(c): one row per setting: its Eq. 8 pdf, then its masks.

  row_labels: [S]; controllers: [S] (eta, h) or None; images: [R, H, W, 3];
  maps: [S] arrays [R, H, W], the masks of setting s for the same R images.
  The first row shows the images themselves.
  """
  plt = _plt()
  settings, count = len(row_labels), len(images)
  fig, axes = plt.subplots(settings + 1, count + 1,
                           figsize=(1.6 * (count + 1), 1.6 * (settings + 1)),
                           squeeze=False)
  images = np.asarray(images)
  if images.dtype == np.uint8:
    images = images.astype(np.float32) / 255
  axes[0, 0].axis("off")
  for c in range(count):
    axes[0, c + 1].imshow(np.clip(images[c], 0, 1))
  for s in range(settings):
    ax = axes[s + 1, 0]
    if controllers[s] is not None:
      eta, h = controllers[s]
      ax.plot(_Z, controller.controlled_pdf(_Z, eta, h))
      ax.set_ylim(0, 4)
    ax.set_ylabel(row_labels[s], fontsize=6, rotation=0, ha="right", va="center")
    for c in range(count):
      axes[s + 1, c + 1].imshow(np.asarray(maps[s][c], np.float32), cmap="jet",
                                vmin=0, vmax=1)
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  fig.subplots_adjust(wspace=0.05, hspace=0.08)
  return _save(fig, path)
