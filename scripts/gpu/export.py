r"""Exports what the GPU runs need, made here on the CPU (TFDS, torch weights).

    .venv/bin/python scripts/gpu/export.py --out=.gpu/data

The device machine has no TensorFlow, TFDS or network, and carries at most
64 MiB, so its inputs travel as compact arrays:

* `composites_224.npz`: `tuxpaint_composites/coarse_224` train (4,000) and
  test (1,000) exactly as the DRE stages and the evaluation read them
  (`dre_jax.data.pipelines.make_dataset(..., train=False)`: resize to 256,
  centre crop 224), as lossy WebP bytes (quality 80, 7.4 KB per image: 5,000
  images in 36 MiB; JPEG needs 45 MiB at quality 75) with the labels and the
  box masks (`box_mask`, bit-packed, lossless). The PSNR of the decoded images
  against the pipeline's float images is printed and stored (`psnr_db`).
* `lite0_imagenet.npz`: EfficientNet-Lite0's ImageNet variables
  (`torch_weights.load_efficientnet_lite0()`), flattened "/"-joined paths, float32
  as converted (16.6 MiB compressed).

Together with the code they stay under the device tool's 64 MiB carry limit.

`scripts/gpu/offline.py` reads both back on the GPU machine.
"""

from __future__ import annotations

import argparse
import io
import os
import sys

import numpy as np

NAME = "tuxpaint_composites/coarse_224"


def encode_split(split: str, data_dir: str, fmt: str, quality: int) -> dict:
  from PIL import Image
  from dre_jax.data import pipelines
  from dre_jax.data import tuxpaint_composites  # noqa: F401  (registers it)
  blobs, labels, boxes, sq_err, count = [], [], [], 0.0, 0
  for batch in pipelines.make_dataset(NAME, split, batch_size=100, train=False,
                                      image_size=224, data_dir=data_dir):
    for image, label, box, valid in zip(batch["image"], batch["label"],
                                        batch["box_mask"], batch["valid"]):
      if not valid:
        continue
      pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
      buffer = io.BytesIO()
      options = ({"quality": quality, "method": 6} if fmt == "WEBP" else
                 {"quality": quality, "subsampling": 0})
      Image.fromarray(pixels).save(buffer, format=fmt, **options)
      decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(
          "RGB"), np.float32) / 255
      sq_err += float(np.mean((decoded - image) ** 2))
      count += 1
      blobs.append(np.frombuffer(buffer.getvalue(), np.uint8))
      labels.append(int(label))
      boxes.append(np.packbits(box > 0.5))
  offsets = np.cumsum([0] + [len(j) for j in blobs]).astype(np.int64)
  psnr = 10 * np.log10(1.0 / (sq_err / count))
  print(f"{split}: {count} images, {offsets[-1] / 2**20:.1f} MiB of {fmt}, "
        f"PSNR {psnr:.1f} dB", flush=True)
  return {f"{split}_bytes": np.concatenate(blobs), f"{split}_offsets": offsets,
          f"{split}_label": np.asarray(labels, np.int32),
          f"{split}_box_bits": np.stack(boxes), f"{split}_psnr_db": psnr}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default=".gpu/data")
  parser.add_argument("--data_dir", default="outputs/tensorflow_datasets")
  parser.add_argument("--format", default="WEBP", choices=("WEBP", "JPEG"))
  parser.add_argument("--quality", type=int, default=80)
  parser.add_argument("--what", default="weights,composites")
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  what = args.what.split(",")
  if "weights" in what:
    import flax
    from dre_jax.io import torch_weights
    _, _, variables = torch_weights.load_efficientnet_lite0()
    flat = {"/".join(k): np.asarray(v) for k, v in
            flax.traverse_util.flatten_dict(variables).items()}
    path = os.path.join(args.out, "lite0_imagenet.npz")
    np.savez_compressed(path, **flat)
    print(f"{path}: {len(flat)} arrays, {os.path.getsize(path) / 2**20:.1f} MiB")
  if "composites" in what:
    arrays = {"format": args.format, "quality": args.quality}
    for split in ("train", "test"):
      arrays.update(encode_split(split, args.data_dir, args.format, args.quality))
    path = os.path.join(args.out, "composites_224.npz")
    np.savez_compressed(path, **arrays)
    print(f"{path}: {os.path.getsize(path) / 2**20:.1f} MiB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
