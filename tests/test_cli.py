"""dre_jax.cli.run: a user's mistake is one line and exit 2, a bug one line and
exit 1; flag names take dashes or underscores."""

import sys
import textwrap

import pytest

import util

SCRIPT = textwrap.dedent("""
    import sys
    from absl import flags
    from dre_jax import cli
    flags.DEFINE_string("what", "ok", "what to raise")
    flags.DEFINE_string("out_dir", "", "printed")
    flags.DEFINE_bool("show_progress", True, "printed")

    def main(argv):
      what = flags.FLAGS.what
      if what == "value":
        raise ValueError("invalid config:\\n  config.x must be > 0\\n  config.y is empty")
      if what == "missing":
        raise FileNotFoundError(2, "No such file or directory", "/nowhere/x.png")
      if what == "key":
        raise KeyError("unknown method 'gcamm'; registered: gcam")
      if what == "bug":
        raise ZeroDivisionError("division by zero")
      print("ran", flags.FLAGS.out_dir, flags.FLAGS.show_progress, argv[1:])

    cli.run(main)
""")


def _run(tmp_path, *args):
  script = tmp_path / "prog.py"
  script.write_text(SCRIPT)
  return util.run_cli([sys.executable, str(script), *args], check=False, timeout=120)


@pytest.mark.parametrize("what, message", [
    ("value", "prog.py: error: invalid config: config.x must be > 0; config.y is empty"),
    ("missing", "prog.py: error: [Errno 2] No such file or directory: '/nowhere/x.png'"),
    ("key", "prog.py: error: unknown method 'gcamm'; registered: gcam"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, what, message):
  result = _run(tmp_path, f"--what={what}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == message
  assert "Traceback" not in result.stderr


def test_a_bad_flag_is_one_line(tmp_path):
  result = _run(tmp_path, "--wht=1")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "Unknown command line flag 'wht'" in result.stderr.strip().splitlines()[-1]


def test_a_bug_names_its_type_and_debug_shows_the_traceback(tmp_path):
  result = _run(tmp_path, "--what=bug")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "prog.py: internal error: ZeroDivisionError: division by zero (rerun with "
      "--debug for the traceback)")
  debug = _run(tmp_path, "--what=bug", "--debug")
  assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_good_run_is_untouched(tmp_path):
  result = _run(tmp_path, "--what=ok")
  assert result.returncode == 0
  assert result.stdout.strip() == "ran  True []"


def test_dashes_and_underscores_in_flag_names(tmp_path):
  result = _run(tmp_path, "--out-dir=a-b_c", "--no-show-progress", "x-y",
                "--", "--not-a-flag")
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "ran a-b_c False ['x-y', '--not-a-flag']"
  result = _run(tmp_path, "--out_dir", "--x-y", "--noshow_progress")
  assert result.stdout.strip() == "ran --x-y False []", result.stderr


def test_flag_names_change_only_names():
  from dre_jax import cli
  assert cli.flag_names(
      ["--torch-weights=a-b.pth", "-num-classes", "7", "--config.eval.num-images=8",
       "--config=configs/x-y.py:run-local", "--no-progress", "--yes", "-",
       "photo-1.jpg", "--out", "-my-dir", "--no-such", "--", "--a-b"],
      booleans=["progress", "yes"]) == [
      "--torch_weights=a-b.pth", "-num_classes", "7", "--config.eval.num_images=8",
      "--config=configs/x-y.py:run-local", "--noprogress", "--yes", "-",
      "photo-1.jpg", "--out", "-my-dir", "--no_such", "--", "--a-b"]
