"""Box-share statistics and a figure of a Tux Paint composites config.

    python scripts/composites_layout.py       # coarse_natural_224, 600 images
    python scripts/composites_layout.py --config=coarse_224 --figure=

Makes the first `--num_images` training examples of the config the way the
builder does (`tuxpaint_composites.make_example`, no TFDS build), prints the
quantiles of their boxes' share of the image, the share of images with more
than one object and of boxes touching the border (the figures quoted in the
builder's docstring and docs/training.md), and writes the first 8 test
examples with their boxes (green) as a 4 x 2 grid to `--figure`
(results/composites_natural.jpg; an empty value writes none). About 30 s
for 600 images at 224 px on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

from dre_jax.data import tuxpaint_composites as tc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def boxes_of(example: dict) -> list:
  """The example's boxes, one per object, whatever the layout."""
  bbox = example["bbox"]
  return bbox if isinstance(bbox, list) else [bbox]


def statistics(examples: list[dict]) -> str:
  """Box-share quantiles, objects per image and border contacts, as text."""
  shares = [(b.ymax - b.ymin) * (b.xmax - b.xmin)
            for ex in examples for b in boxes_of(ex)]
  touching = sum(min(b.ymin, b.xmin) == 0 or max(b.ymax, b.xmax) == 1
                 for ex in examples for b in boxes_of(ex))
  several = sum(len(boxes_of(ex)) > 1 for ex in examples)
  q = np.quantile(shares, QUANTILES)
  return (f"{len(examples)} images, {len(shares)} boxes; box share quantiles "
          + ", ".join(f"{100 * p:g}% {v:.3f}" for p, v in zip(QUANTILES, q))
          + f"; mean {np.mean(shares):.3f}; images with more than one object "
          f"{several / len(examples):.0%}; boxes touching the border "
          f"{touching / len(shares):.0%}")


def grid(examples: list[dict], columns: int = 4) -> Image.Image:
  """The examples' images with their boxes drawn, `columns` per row."""
  size = examples[0]["image"].shape[0]
  rows = -(-len(examples) // columns)
  canvas = Image.new("RGB", (columns * size, rows * size), "white")
  for i, ex in enumerate(examples):
    tile = Image.fromarray(ex["image"])
    draw = ImageDraw.Draw(tile)
    for b in boxes_of(ex):
      draw.rectangle([b.xmin * size, b.ymin * size, b.xmax * size - 1,
                      b.ymax * size - 1], outline=(0, 255, 0), width=2)
    canvas.paste(tile, ((i % columns) * size, (i // columns) * size))
  return canvas


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="coarse_natural_224")
  parser.add_argument("--num_images", type=int, default=600)
  parser.add_argument("--figure", default=os.path.join(
      ROOT, "results", "composites_natural.jpg"))
  parser.add_argument("--tuxpaint_root", default=None)
  args = parser.parse_args()
  configs = {c.name: c for c in tc.TuxpaintComposites.BUILDER_CONFIGS}
  if args.config not in configs:
    parser.error(f"--config={args.config} is not one of {', '.join(configs)}")
  config = configs[args.config]
  root = tc.resolve_root(args.tuxpaint_root)
  stamps, _ = tc.scan_stamps(root)
  backgrounds, _ = tc.load_backgrounds(root)
  names, objects = tc.split_objects(stamps, config.labels,
                                    config.holdout_objects)

  def examples(split: str, n: int) -> list[dict]:
    return [tc.make_example(config, split, i, objects[split], names,
                            backgrounds) for i in range(n)]

  print(f"{config.name}: {statistics(examples('train', args.num_images))}")
  if args.figure:
    grid(examples("test", 8)).save(args.figure, quality=90)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
  main()
