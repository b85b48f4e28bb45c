"""`dre-convert`: converts torchvision-layout weights into a classifier directory.

    dre-convert --arch resnet50 --torch_weights resnet50.pth \
        --out weights/resnet50 [--num_classes 200] [--state_dict_key state_dict]

(from a source checkout without installing: `python -m dre_jax.cli.convert`)

It reads a `torch.save` file without torch (`dre_jax.io.pth`), maps every Flax
variable of the registered architecture to its PyTorch key and writes a
classifier directory (`dre_jax.io.classifier_dir`) that training
(`--config.model.checkpoint=weights/resnet50`) and `dre_jax.io.load_classifier`
read back. The conversion itself is `dre_jax.io.torch_weights`. Keys of a
`nn.DataParallel`/DDP model lose their "module." prefix; a mistake (a file that
is not a state_dict, weights of another architecture, an existing --out) is one
line naming the fix (`dre_jax.cli`, --debug for the traceback). Flag names
take dashes or underscores (--torch-weights, --torch_weights).
"""

from __future__ import annotations

import argparse
import sys

import jax

from dre_jax import cli
from dre_jax.io import classifier_dir
from dre_jax.io import pth
from dre_jax.io import torch_weights
from dre_jax.models import registry


def main(argv: list[str] | None = None, prog: str = "dre-convert") -> None:
  """Converts as the arguments `argv` (default sys.argv[1:]) say."""
  parser = argparse.ArgumentParser(
      prog=prog, description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--arch", required=True, choices=registry.names())
  parser.add_argument("--torch_weights", required=True,
                      help="a torch.save file (.pth/.ckpt) of a state_dict")
  parser.add_argument("--state_dict_key", default=None,
                      help="entry of a file that nests state_dicts, e.g. "
                      "'state_dict'")
  parser.add_argument("--out", required=True, help="directory to write")
  parser.add_argument("--num_classes", type=int, default=None,
                      help="default: read off the checkpoint's classifier")
  args = parser.parse_args(cli.flag_names(
      sys.argv[1:] if argv is None else argv))

  spec = registry.get(args.arch)
  state_dict, stripped = torch_weights.strip_data_parallel(
      pth.load_state_dict(args.torch_weights, args.state_dict_key))
  if stripped:
    print(f"note: removed the {torch_weights.DATA_PARALLEL_PREFIX!r} prefix "
          "(nn.DataParallel/DDP) from every key")
  num_classes = args.num_classes or torch_weights.infer_num_classes(
      spec, state_dict)
  variables = torch_weights.torch_to_flax(spec, state_dict, num_classes)
  out = classifier_dir.save_classifier(args.out, args.arch, num_classes,
                                       variables)
  count = sum(x.size for x in jax.tree.leaves(variables.get("params", {})))
  print(f"wrote {out}: {args.arch} with {num_classes} classes, {count:,} "
        f"parameters, from {args.torch_weights}")


def run(prog: str = "dre-convert") -> None:
  """The console script: `main` on sys.argv; errors start with `prog`."""
  cli.run(lambda argv: main(argv, prog), absl_flags=False, prog=prog)


if __name__ == "__main__":
  run("python -m dre_jax.cli.convert")
