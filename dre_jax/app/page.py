"""What `dre-explain` writes: per image the maps, PNGs and a figure; one web page.

    OUT/
      index.html              every image: the input, its top-5 classes, one
                              column per method (heat-map overlay, links to the
                              figure and the map); the failures at the end
      results.json            the same as data: source, top-5, target, files
      <name>/input.png        the S x S image that was explained
      <name>/<method>.npy     the method's map, [S, S] float32
      <name>/<method>.png     the heat map over the image
      <name>/figure.png       one row per method: image | heat-map overlay |
                              masked image (image x map)

Display scale (the `.npy` files keep the raw values): masks (the methods
whose `dre_jax.explainers.Method.output` is "mask": DRE, MGnet, DRE+, MPert,
FInv) are in [0, 1] and are shown as they are; any other method's map (an
attribution) is divided by its 99th percentile of |map| and clipped to [0, 1]
(Captum's `visualize_image_attr` default clips the top 2%), so one hot pixel
does not wash out the rest. Heat maps use matplotlib's "jet" at 50%
opacity over the image (as pytorch-grad-cam's `show_cam_on_image`).
Every file is written atomically (`dre_jax.atomic`).
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import urllib.parse
from typing import Any, Sequence

import numpy as np

from dre_jax import atomic
from dre_jax import explainers

PERCENTILE = 99.0
ALPHA = 0.5
COLORMAP = "jet"
INDEX = "index.html"
RESULTS = "results.json"


def display_map(saliency: np.ndarray, method: str) -> np.ndarray:
  """[H, W] map -> [H, W] float32 in [0, 1] for display (module docstring)."""
  saliency = np.nan_to_num(np.asarray(saliency, np.float32))
  if explainers.method(method).output == "mask":  # in [0, 1]: shown unscaled
    return np.clip(saliency, 0, 1)
  scale = np.percentile(np.abs(saliency), PERCENTILE)
  if scale <= 0:
    scale = np.abs(saliency).max()
  if scale <= 0:
    return np.zeros_like(saliency)
  return np.clip(saliency / scale, 0, 1)


def colorize(values: np.ndarray) -> np.ndarray:
  """[H, W] in [0, 1] -> [H, W, 3] float32 RGB of the colour map."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  return matplotlib.colormaps[COLORMAP](values)[..., :3].astype(np.float32)


def overlay(image: np.ndarray, values: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
  """The heat map of `values` [H, W] in [0, 1] over `image` [H, W, 3]."""
  return np.clip((1 - alpha) * image + alpha * colorize(values), 0, 1)


def to_png(image: np.ndarray) -> bytes:
  """[H, W, 3] float in [0, 1] -> PNG bytes (8 bit)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  buffer = io.BytesIO()
  Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(
      buffer, format="PNG")
  return buffer.getvalue()


def to_npy(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  np.save(buffer, np.asarray(array, np.float32))
  return buffer.getvalue()


def figure_png(image: np.ndarray, maps: dict[str, np.ndarray], title: str,
               method_titles: dict[str, str] | None = None) -> bytes:
  """One row per method: image | heat-map overlay (with a colour bar) | masked image."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  rows = len(maps)
  height = 2.7 * rows + 0.35
  fig, axes = plt.subplots(rows, 3, figsize=(8.4, height), squeeze=False)
  for row, (method, saliency) in enumerate(maps.items()):
    values = display_map(saliency, method)
    ax_img, ax_map, ax_masked = axes[row]
    ax_img.imshow(np.clip(image, 0, 1))
    ax_img.set_title("image", fontsize=8)
    ax_map.imshow(np.clip(image, 0, 1))
    shown = ax_map.imshow(values, cmap=COLORMAP, vmin=0, vmax=1, alpha=ALPHA)
    label = (method_titles or {}).get(method, method)
    ax_map.set_title(label, fontsize=8)
    bar = fig.colorbar(shown, ax=ax_map, fraction=0.046, pad=0.02)
    bar.solids.set_alpha(1)
    bar.ax.tick_params(labelsize=6)
    ax_masked.imshow(np.clip(image * values[..., None], 0, 1))
    ax_masked.set_title(f"image x {method} map", fontsize=8)
    for ax in axes[row]:
      ax.axis("off")
  fig.suptitle(title, fontsize=9)
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / height))  # the title's strip
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=90)
  plt.close(fig)
  return buffer.getvalue()


def unique_name(source: str, used: set[str]) -> str:
  """A folder name for `source` (its file stem, safe characters), unique in `used`."""
  stem = os.path.splitext(os.path.basename(source.rstrip("/")))[0] or "image"
  stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"
  stem = stem[:80]
  if stem in (INDEX, RESULTS):
    stem = f"{stem}_"
  name, n = stem, 2
  while name.lower() in used:
    name, n = f"{stem}-{n}", n + 1
  used.add(name.lower())
  return name


def write_image(out: str, name: str, image: np.ndarray,
                maps: dict[str, np.ndarray], title: str,
                method_titles: dict[str, str] | None = None) -> dict[str, Any]:
  """Writes one image's files under `out/name/`; returns their relative paths."""
  files = {"input": f"{name}/input.png", "figure": f"{name}/figure.png",
           "maps": {}, "overlays": {}}
  atomic.write_atomic(os.path.join(out, files["input"]), to_png(image))
  for method, saliency in maps.items():
    files["maps"][method] = f"{name}/{method}.npy"
    files["overlays"][method] = f"{name}/{method}.png"
    atomic.write_atomic(os.path.join(out, files["maps"][method]), to_npy(saliency))
    atomic.write_atomic(os.path.join(out, files["overlays"][method]),
                        to_png(overlay(image, display_map(saliency, method))))
  atomic.write_atomic(os.path.join(out, files["figure"]),
                      figure_png(image, maps, title, method_titles))
  return files


def write_results(out: str, header: dict[str, Any], entries: Sequence[dict],
                  failures: Sequence[dict]) -> None:
  """results.json: the header, one entry per explained image, the failures."""
  atomic.write_atomic(os.path.join(out, RESULTS), json.dumps(
      {**header, "images": list(entries), "failures": list(failures)}, indent=1))


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
p.info { color: #555; margin-top: 0; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 10px; vertical-align: top;
         text-align: left; }
th { background: #f4f4f4; position: sticky; top: 0; }
img { width: 192px; height: 192px; image-rendering: auto; display: block; }
td.source { font-size: 0.85em; max-width: 200px; word-break: break-all; }
ol { margin: 0; padding-left: 1.3em; font-size: 0.9em; }
li.target { font-weight: bold; }
span.p { color: #666; font-variant-numeric: tabular-nums; }
div.links { font-size: 0.8em; margin-top: 3px; }
div.target { font-size: 0.85em; margin-top: 6px; }
ul.failures li { font-family: monospace; font-size: 0.9em; }
"""


def _href(path: str) -> str:
  return html.escape(urllib.parse.quote(path), quote=True)


def index_html(header: dict[str, Any], entries: Sequence[dict],
               failures: Sequence[dict]) -> str:
  """The page: a row per image (input, top-5 classes, a column per method)."""
  methods = header["methods"]
  e = html.escape
  rows = []
  for entry in entries:
    files = entry["files"]
    classes = "".join(
        f'<li{" class=target" if c["index"] == entry["target"]["index"] else ""}>'
        f'{e(c["name"])} <span class="p">{c["probability"]:.3f}</span></li>'
        for c in entry["top"])
    target = entry["target"]
    cells = [
        f'<td class="source"><a href="{_href(files["input"])}">'
        f'<img src="{_href(files["input"])}" alt="input"></a>'
        f'{e(entry["source"])}</td>',
        f'<td><ol>{classes}</ol><div class="target">explained: '
        f'{e(target["name"])} ({target["index"]}, p = '
        f'{target["probability"]:.3f})</div></td>']
    for method in methods:
      cells.append(
          f'<td><a href="{_href(files["figure"])}"><img src="'
          f'{_href(files["overlays"][method])}" alt="{e(method)}"></a>'
          f'<div class="links"><a href="{_href(files["maps"][method])}">'
          f'{e(method)}.npy</a> · <a href="{_href(files["figure"])}">figure</a>'
          '</div></td>')
    rows.append("<tr>" + "".join(cells) + "</tr>")
  head = "".join(f"<th>{e(m)}</th>" for m in methods)
  failed = ""
  if failures:
    items = "".join(f"<li>{e(f['source'])}: {e(f['reason'])}</li>"
                    for f in failures)
    failed = (f"<h2>{len(failures)} input{'s' * (len(failures) != 1)} could "
              f"not be explained</h2><ul class=failures>{items}</ul>")
  info = (f"{len(entries)} image{'s' * (len(entries) != 1)} explained by "
          f"{e(header['classifier'])} ({header['num_classes']} classes) from "
          f"{e(header['source'])}; {header['image_size']} x "
          f"{header['image_size']} px; maps: {e(', '.join(methods))}. "
          f'Data: <a href="{RESULTS}">{RESULTS}</a>.')
  return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>dre_jax explanations</title><style>{_STYLE}</style></head>
<body><h1>Explanations</h1><p class="info">{info}</p>
<table><thead><tr><th>image</th><th>top-5 classes</th>{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
{failed}
</body></html>
"""


def write_index(out: str, header: dict[str, Any], entries: Sequence[dict],
                failures: Sequence[dict]) -> str:
  path = os.path.join(out, INDEX)
  atomic.write_atomic(path, index_html(header, entries, failures))
  return path
