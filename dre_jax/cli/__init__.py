"""The command-line tools, and the layer they share.

Installed as console scripts (`pip install .`); the top-level scripts of a
source checkout run the same code:

    dre-train     (python train.py)      `dre_jax.cli.train`
    dre-evaluate  (python evaluate.py)   `dre_jax.cli.evaluate`
    dre-explain   (python explain.py)    `dre_jax.cli.explain`
    dre-convert   (python -m dre_jax.cli.convert)   `dre_jax.cli.convert`

`run(main)` is `absl.app.run(main)` where a user's mistake (a bad flag, a mistyped
config field, a missing file, an invalid value) ends with one line

    train.py: error: config.dataset.image_size=100 must be a positive multiple of 32 ...

on stderr and exit status 2, instead of a Python traceback. The library raises
ordinary exceptions with messages that name the problem and the fix; this module
only prints them. A missing optional dependency is one line naming the pip extra
that installs it (`dre_jax.extras`). `--debug` (or the environment variable
DRE_JAX_DEBUG=1) shows the full traceback instead. An unexpected error (a bug)
is also one line, with its type, and exit status 1.

Flag names take dashes or underscores (`--torch-weights`, `--torch_weights`,
`--config.eval.num-images=8`); `flag_names` spells them with underscores before
parsing, leaving values, config paths and the arguments after `--` as they are.

Configs. The experiment configs live in the checkout's `configs/` and are
installed with the package as `dre_jax/configs/` (in the source tree a link to
`../configs`, so both are the same files). `--config` takes a path, as
`--config=configs/cub_resnet.py`, or the name of an installed config, as
`--config=quickstart` or `--config=cub_resnet:runlocal`; a file of that name
in the working directory comes first (`config_path`).
"""

from __future__ import annotations

import ast
import logging
import os
import re
import sys
import threading
from typing import Callable, Sequence

from absl import app
from absl import flags

from dre_jax import extras

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "configs")

# What a user's mistake raises: bad values, missing or damaged files, unknown names.
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, flags.Error,
               app.UsageError)


class UserError(Exception):
  """An error whose message is the whole story (raised by CLI code)."""


def _message(error: BaseException) -> str:
  """The error's message on one line (KeyError and AttributeError unquoted)."""
  if isinstance(error, OSError) or not error.args:
    text = str(error)  # OSError(errno, strerror, filename) reads well as a whole
  else:
    text = str(error.args[0])
  if text[:1] in "'\"" and text[-1:] == text[:1]:
    try:  # a message that is itself a repr
      text = str(ast.literal_eval(text))
    except (ValueError, SyntaxError):
      pass
  if isinstance(error, AttributeError) and text.startswith("'"):
    # ml_collections: "'learning_rte'\nDid you mean ..." for a mistyped field.
    name, _, rest = text.partition("\n")
    text = f"unknown config field {name}. {rest}"
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  out = ""
  for line in lines:
    out += line if not out else (" " if out.endswith(":") else "; ") + line
  # ml_collections: a locked config's field dump before its "Did you mean".
  out = re.sub(r" Other fields present: \".*\"; (Did you mean)", r" \1", out)
  return out or type(error).__name__


def _is_user_error(error: BaseException) -> bool:
  if isinstance(error, ModuleNotFoundError):  # an optional dependency
    return extras.install_hint(error.name) is not None
  if isinstance(error, AttributeError):  # only ml_collections' unknown field
    return "Did you mean" in str(error) or "ConfigDict" in str(error)
  return isinstance(error, (UserError, *USER_ERRORS))


def _missing_module_message(error: ModuleNotFoundError) -> str:
  """`extras.require`'s line as it is; Python's own with the extra to install."""
  text = _message(error)
  if "pip install" in text:
    return text
  return f"{text}: {extras.install_hint(error.name)}"


def check_dtype(value: str) -> str:
  """A --dtype flag's value, checked: one of `dre_jax.config.DTYPES`, else a
  UserError naming the choices."""
  from dre_jax import config  # pylint: disable=import-outside-toplevel
  try:
    config.compute_dtype(value)
  except ValueError as e:
    raise UserError(f"--dtype={value}: {e}") from None
  return value


def config_names() -> list[str]:
  """The installed configs' names (`CONFIG_DIR`), for --config=NAME."""
  if not os.path.isdir(CONFIG_DIR):
    return []
  return sorted(f[:-3] for f in os.listdir(CONFIG_DIR)
                if f.endswith(".py") and not f.startswith("_"))


def config_path(value: str) -> str:
  """A --config value with an installed config's name replaced by its path.

  `quickstart`, `quickstart.py` and `cub_resnet:runlocal` name installed
  configs; a path, or a file of that name in the working directory, is kept.
  A bare name that is neither is a UserError listing the installed names.
  """
  path, colon, arg = value.partition(":")
  if os.path.isfile(path) or os.sep in path or "/" in path:
    return value
  name = path[:-3] if path.endswith(".py") else path
  if name in config_names():
    return os.path.join(CONFIG_DIR, name + ".py") + colon + arg
  raise UserError(f"--config={value}: no file {path!r} and no installed "
                  f"config of that name; give a path (configs/{name}.py) or "
                  f"one of: {', '.join(config_names())}")


def with_config_paths(argv: list[str]) -> list[str]:
  """argv with `--config=NAME` (or `--config NAME`) as the config's path.

  The overrides (`--config.dre.epochs=3`) are kept as they are.
  """
  out = list(argv)
  for i, arg in enumerate(out):
    if i == 0:
      continue
    if arg == "--":
      break
    for prefix in ("--config=", "-config="):
      if arg.startswith(prefix):
        out[i] = prefix + config_path(arg[len(prefix):])
    if arg in ("--config", "-config") and i + 1 < len(out):
      out[i + 1] = config_path(out[i + 1])
  return out


def flag_names(args: Sequence[str], booleans: Sequence[str] = ()) -> list[str]:
  """args (without the program name) with every flag's name spelt with
  underscores: `--torch-weights=a-b.pth` -> `--torch_weights=a-b.pth`, and
  `--no-progress` -> `--noprogress` for a boolean flag in `booleans` (absl's
  negation).

  Only names change: a value after "=", the value after a flag without "="
  that is not in `booleans` (`--out -my-dir`), the arguments that are not
  flags and everything after "--" stay as they are.
  """
  out = list(args)
  value_next = False
  for i, arg in enumerate(out):
    if arg == "--":
      break
    dashes = len(arg) - len(arg.lstrip("-"))
    if value_next or dashes not in (1, 2) or len(arg) == dashes:
      value_next = False
      continue
    name, eq, value = arg[dashes:].partition("=")
    name = name.replace("-", "_")
    if name.startswith("no_") and name[3:] in booleans and name not in booleans:
      name = "no" + name[3:]
    value_next = not eq and name not in booleans and not (
        name.startswith("no") and name[2:] in booleans)
    out[i] = arg[:dashes] + name + eq + value
  return out


def _adopt_module(main: Callable, argv0: str) -> None:
  """main's module's flags and docstring become the program's (argv[0]), so
  that --help and --helpshort show them under a console script or a wrapper."""
  module = getattr(main, "__module__", None)
  if not module or module == "__main__":
    return  # absl files __main__'s flags under argv[0] already
  for flag in flags.FLAGS.get_key_flags_for_module(module):
    flags.FLAGS.register_key_flag_for_module(argv0, flag)
  if "__main__" in sys.modules:  # absl's usage text is __main__'s docstring
    sys.modules["__main__"].__doc__ = sys.modules[module].__doc__


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    raise UserError(f"{e} (see --helpshort)") from e


def run(main: Callable[[Sequence[str]], object], argv: list[str] | None = None,
        *, absl_flags: bool = True, prog: str | None = None) -> None:
  """Runs `main(argv)` under absl; user errors become one line and exit 2.

  absl_flags=False: `main(argv[1:])` parses its arguments itself (argparse);
  only the errors are handled here. prog: the name errors start with
  (default: the script's file name). A `--config` flag (ml_collections'
  config_flags) also takes an installed config's name (`with_config_paths`).
  Flag names take dashes or underscores (`flag_names`).
  """
  argv = list(sys.argv if argv is None else argv)
  booleans = [n for n in flags.FLAGS if flags.FLAGS[n].boolean] if absl_flags else []
  argv = argv[:1] + flag_names(argv[1:], booleans)
  debug = "--debug" in argv or os.environ.get("DRE_JAX_DEBUG", "") not in ("", "0")
  argv = [a for a in argv if a != "--debug"]
  prog = prog or (os.path.basename(argv[0]) if argv else "dre_jax")
  if absl_flags and argv:
    _adopt_module(main, argv[0])
  if not debug:
    main = _filtering_closed_loops(main)
  saved_argv = sys.argv
  try:
    if absl_flags:
      if "config" in flags.FLAGS:
        argv = with_config_paths(argv)
      sys.argv = argv  # config_flags reads its overrides off sys.argv
      app.run(main, argv=argv, flags_parser=_parse_flags)
    else:
      main(argv[1:])
  except SystemExit:
    raise
  except KeyboardInterrupt:
    print(f"{prog}: interrupted", file=sys.stderr)
    sys.exit(130)
  except Exception as e:  # pylint: disable=broad-except
    if debug:
      raise
    if _is_user_error(e):
      message = (_missing_module_message(e) if isinstance(e, ModuleNotFoundError)
                 else _message(e))
      print(f"{prog}: error: {message}", file=sys.stderr)
      sys.exit(2)
    print(f"{prog}: internal error: {type(e).__name__}: {_message(e)} "
          "(rerun with --debug for the traceback)", file=sys.stderr)
    sys.exit(1)
  finally:
    sys.argv = saved_argv


def _is_closed_loop_noise(exc) -> bool:
  return isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc)


class _ClosedLoopFilter(logging.Filter):
  """Drops records of a background future's callback failing on a closed loop."""

  def filter(self, record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not _is_closed_loop_noise(exc)


def _silence_closed_loops() -> None:
  """For the rest of the process: the closed-loop noise of orbax's background
  work is dropped from the root handlers, thread exceptions and unraisable
  exceptions (the process is about to exit with its one error line)."""
  closed = _ClosedLoopFilter()
  for handler in logging.getLogger().handlers:
    handler.addFilter(closed)
  thread_hook, unraisable_hook = threading.excepthook, sys.unraisablehook

  def on_thread(args):
    if not _is_closed_loop_noise(args.exc_value):
      thread_hook(args)

  def on_unraisable(args):
    if not _is_closed_loop_noise(args.exc_value):
      unraisable_hook(args)

  threading.excepthook = on_thread
  sys.unraisablehook = on_unraisable


def _filtering_closed_loops(main):
  """main, with the root handlers (absl's, installed by app.run) filtering the
  "Event loop is closed" tracebacks that orbax's asynchronous work can log when
  a restore fails (a damaged checkpoint): the user's one error line follows."""

  def wrapped(argv):
    handlers, closed = list(logging.getLogger().handlers), _ClosedLoopFilter()
    previous = threading.excepthook

    def hook(args):
      if not _is_closed_loop_noise(args.exc_value):
        previous(args)

    for handler in handlers:
      handler.addFilter(closed)
    threading.excepthook = hook
    try:
      result = main(argv)
    except BaseException:
      # The filter stays: the background work that the failure left behind
      # may still log while the error line is printed and the process exits.
      _silence_closed_loops()
      raise
    # A normal return: in-process callers (tests) get their logging back.
    threading.excepthook = previous
    for handler in handlers:
      handler.removeFilter(closed)
    return result

  return wrapped

