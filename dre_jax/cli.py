"""The command-line layer shared by train.py, evaluate.py, explain.py and the converter.

`run(main)` is `absl.app.run(main)` where a user's mistake (a bad flag, a mistyped
config field, a missing file, an invalid value) ends with one line

    train.py: error: config.dataset.image_size=100 must be a positive multiple of 32 ...

on stderr and exit status 2, instead of a Python traceback. The library raises
ordinary exceptions with messages that name the problem and the fix; this module
only prints them. `--debug` (or the environment variable DRE_JAX_DEBUG=1) shows
the full traceback instead. An unexpected error (a bug) is also one line, with
its type, and exit status 1.
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
  if isinstance(error, AttributeError):  # only ml_collections' unknown field
    return "Did you mean" in str(error) or "ConfigDict" in str(error)
  return isinstance(error, (UserError, *USER_ERRORS))


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
  (default: the script's file name).
  """
  argv = list(sys.argv if argv is None else argv)
  debug = "--debug" in argv or os.environ.get("DRE_JAX_DEBUG", "") not in ("", "0")
  argv = [a for a in argv if a != "--debug"]
  prog = prog or (os.path.basename(argv[0]) if argv else "dre_jax")
  if not debug:
    main = _filtering_closed_loops(main)
  try:
    if absl_flags:
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
      print(f"{prog}: error: {_message(e)}", file=sys.stderr)
      sys.exit(2)
    print(f"{prog}: internal error: {type(e).__name__}: {_message(e)} "
          "(rerun with --debug for the traceback)", file=sys.stderr)
    sys.exit(1)


def _is_closed_loop_noise(exc) -> bool:
  return isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc)


class _ClosedLoopFilter(logging.Filter):
  """Drops records of a background future's callback failing on a closed loop."""

  def filter(self, record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not _is_closed_loop_noise(exc)


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
      return main(argv)
    finally:  # in-process callers (tests) get their logging back as it was
      threading.excepthook = previous
      for handler in handlers:
        handler.removeFilter(closed)

  return wrapped

