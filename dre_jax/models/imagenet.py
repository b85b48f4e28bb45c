"""ImageNet-1k (ILSVRC2012) class names in the index order of the classifiers.

`imagenet_classes.txt` is OpenCV's
`samples/data/dnn/classification_classes_ILSVRC2012.txt` (Debian `opencv-doc`;
Apache-2.0 / BSD-3-Clause): one line per class, synonyms separated by ", ",
e.g. line 282 (index 281) "tabby, tabby cat".
"""

from __future__ import annotations

import functools
import importlib.resources

NUM_CLASSES = 1000


@functools.cache
def _names() -> tuple[str, ...]:
  text = (importlib.resources.files("dre_jax.models") / "imagenet_classes.txt"
          ).read_text(encoding="utf-8")
  names = tuple(text.splitlines())
  if len(names) != NUM_CLASSES:
    raise RuntimeError(f"imagenet_classes.txt has {len(names)} lines, expected "
                       f"{NUM_CLASSES}; the package data is damaged, reinstall")
  return names


def imagenet_class_names() -> list[str]:
  """The 1000 class names; `names[i]` is the class of logit i."""
  return list(_names())
