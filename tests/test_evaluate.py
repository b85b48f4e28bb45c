"""evaluate.py end to end on a tiny workdir (tiny_cnn, 64 px, a TFDS dataset
with boxes written by the test), as a user runs it.

* Three methods (dre, gcam, vgrad): every output, permissions 0644, DRE's
  per-image M_F equal to the estimator and metric functions called directly.
* SIGKILL mid-run, then the same command: the same numbers as the
  uninterrupted run, and no `eval/` before the run has finished.
* A partial run (--max_shards) writes eval_partial/ and leaves eval/ alone;
  the estimator's image size wins over the config's (with a note).
* Two processes with --shards=1 and --shards=0 in one workdir: the first
  reports what is missing and publishes nothing, the second publishes the
  numbers of the single run.
* `--workdir=~/...` and no --config (the workdir's config.json).
* Two workdirs: the combined tables and the Fig. 10-style grid.
* A user's mistake is one line and exit status 2.
"""

import glob
import os
import re
import shutil
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eval_util
import util

pytestmark = pytest.mark.slow  # evaluate.py in subprocesses

METHODS = "--methods=dre,gcam,vgrad"
# What TensorFlow's import prints whatever happens next (not evaluate.py's).
TENSORFLOW_CHATTER = re.compile(r"^(WARNING: All log messages before absl|I\d{4} )")
NUM_IMAGES = "--num_images=16"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("eval"))
  workdir, config = eval_util.make_workdir(root)
  # A copy of the trained files (not of any evaluation) for the resume test.
  copy = os.path.join(root, "copy")
  os.makedirs(copy)
  for name in ("classifier", "estimator", "config.json"):
    source = os.path.join(workdir, name)
    (shutil.copytree if os.path.isdir(source) else shutil.copy)(
        source, os.path.join(copy, name))
  return root, workdir, copy, config


@pytest.fixture(scope="module")
def full_run(setup):
  _, workdir, _, config = setup
  result = eval_util.run_evaluate(workdir, f"--config={config}", METHODS, NUM_IMAGES)
  return result, eval_util.read_results(workdir), _per_image(workdir)


def _per_image(workdir, link="eval"):
  with np.load(os.path.join(workdir, link, "per_image.npz")) as f:
    return {k: f[k] for k in f.files}


def test_three_methods_end_to_end(setup, full_run):
  _, workdir, _, _ = setup
  result, results, per_image = full_run
  line = re.search(r'\[evaluate\] 16 images of tiny_boxes/test: (\{.*\})',
                   result.stdout)
  assert line, result.stdout
  assert set(eval(line.group(1))) == {"faithfulness", "explainability", "skewness"}  # noqa: S307
  assert os.path.islink(os.path.join(workdir, "eval"))
  report = os.path.join(workdir, "eval")
  for name in ["results.json", "tables.md", "per_image.npz", "figure_data.npz",
               "figures/saliency.png", "figures/misclassified.png",
               "figures/mean_curves.png", "figures/fig5_controller_pdfs.png",
               "figures/fig6_other_distributions.png", "figures/fig13_uniform.png",
               "figures/fig14_skew_normal.png", "figures/fig15_mixtures.png"]:
    path = os.path.join(report, name)
    assert os.path.getsize(path) > 0, name
    assert os.stat(path).st_mode & 0o777 == 0o644, name
  assert sorted(results["methods"]) == ["dre", "gcam", "vgrad"]
  assert results["num_images"] == 16 and not results["partial"]
  assert results["image_size"] == 64
  assert 0 < results["classifier_accuracy"] < 1  # both figures have rows
  tables = open(os.path.join(report, "tables.md")).read()
  for title in ("Table 2", "Tables 3 and 5", "Table 4", "Skewness", "tie-breaker"):
    assert title in tables
  for name, m in results["methods"].items():
    for key in ("faithfulness", "faithfulness_normalised", "explainability",
                "skewness", "seconds_per_image"):
      assert np.isfinite(m[key]), (name, key)
    np.testing.assert_allclose(m["faithfulness"],
                               per_image[f"{name}/faithfulness"].mean(), rtol=1e-6)
    np.testing.assert_allclose(m["explainability"],
                               per_image[f"{name}/explainability"].mean(), rtol=1e-6)

  # DRE's M_F image by image, from the estimator and the metric directly.
  from dre_jax import metrics
  from dre_jax.data import pipelines
  from dre_jax.io import load_estimator
  dre, clf, variables, _ = load_estimator(workdir)
  data = next(pipelines.make_dataset(
      "tiny_boxes", "test", batch_size=32, train=False, image_size=64,
      data_dir=os.path.join(setup[0], "tfds"), process_index=0, process_count=1))
  images = jnp.asarray(data["image"][per_image["index"]])
  masks, target = jax.jit(dre.explain)(clf, variables, images)
  np.testing.assert_array_equal(per_image["target"], target)
  curve = metrics.insertion_curve(clf.probability, images, masks, target, num_steps=8,
                                  steps_per_call=4, tie_break=metrics.TieBreak(
                                      **results["protocol"]["tie_break"]))
  np.testing.assert_allclose(per_image["dre/faithfulness"],
                             metrics.faithfulness(curve), rtol=1e-4, atol=1e-4)


def test_killed_run_resumes_with_the_same_numbers(setup, full_run):
  _, _, copy, config = setup
  command = eval_util.evaluate_command(copy, f"--config={config}", METHODS, NUM_IMAGES)
  process = subprocess.Popen(command, env=util.subprocess_env(), cwd=util.REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
  pattern = os.path.join(copy, "evaluation", "cache", "*-*", "shard-00000.npz")
  deadline = time.time() + 300
  while time.time() < deadline and process.poll() is None:
    done = [p for p in glob.glob(pattern) if "/common-" not in p]
    if done:
      break
    time.sleep(0.05)
  assert process.poll() is None, "the run ended before it could be killed"
  os.killpg(process.pid, signal.SIGKILL)
  process.wait()
  assert not os.path.exists(os.path.join(copy, "eval"))  # nothing half-published
  eval_util.run_evaluate(copy, f"--config={config}", METHODS, NUM_IMAGES)
  _, results, per_image = full_run
  resumed = _per_image(copy)
  assert set(resumed) == set(per_image)
  for key, value in per_image.items():
    np.testing.assert_array_equal(resumed[key], value, err_msg=key)
  again = eval_util.read_results(copy)
  for name, m in results["methods"].items():
    for key in ("faithfulness", "faithfulness_normalised", "explainability",
                "skewness", "median_skewness"):
      assert again["methods"][name][key] == m[key], (name, key)

  # Both workdirs together: one column each, and the grid of their masks.
  out = os.path.join(setup[0], "comparison")
  eval_util.run_evaluate(f"{setup[1]},{copy}", f"--config={config}", METHODS,
                         NUM_IMAGES, f"--compare_dir={out}")
  tables = open(os.path.join(out, "tables.md")).read()
  assert "tiny_cnn (workdir)" in tables and "tiny_cnn (copy)" in tables
  assert os.path.getsize(os.path.join(out, "workdirs.png")) > 0


def test_partial_run_leaves_the_full_result_alone(setup, full_run):
  _, workdir, _, config = setup
  before = os.path.realpath(os.path.join(workdir, "eval"))
  result = eval_util.run_evaluate(workdir, f"--config={config}", METHODS, NUM_IMAGES,
                                  "--max_shards=1", "--config.dataset.image_size=96")
  assert "at 64 px, the size the estimator was trained at" in result.stdout
  assert os.path.realpath(os.path.join(workdir, "eval")) == before
  assert eval_util.read_results(workdir) == full_run[1]
  partial = eval_util.read_results(workdir, "eval_partial")
  assert partial["partial"] and partial["num_images"] == 8
  assert partial["image_size"] == 64


def test_shards_split_between_two_processes(setup, full_run):
  root, _, copy, config = setup
  workdir = os.path.join(root, "sharded")
  for name in ("classifier", "estimator", "config.json"):
    source = os.path.join(copy, name)
    (shutil.copytree if os.path.isdir(source) else shutil.copy)(
        source, os.path.join(workdir, name))
  first = eval_util.run_evaluate(workdir, f"--config={config}", METHODS,
                                 NUM_IMAGES, "--shards=1")
  assert "shards 1 written; still missing (common: 0; dre: 0; gcam: 0; " \
      "vgrad: 0)" in first.stdout, first.stdout[-3000:]
  assert not os.path.exists(os.path.join(workdir, "eval"))
  eval_util.run_evaluate(workdir, f"--config={config}", METHODS, NUM_IMAGES,
                         "--shards=0")
  per_image = _per_image(workdir)
  for key, value in full_run[2].items():
    np.testing.assert_array_equal(per_image[key], value, err_msg=key)
  assert eval_util.read_results(workdir)["num_images"] == 16


def test_tilde_workdir_and_its_config_json(setup, full_run):
  root, workdir, _, _ = setup
  before = os.path.realpath(os.path.join(workdir, "eval"))
  result = eval_util.run_evaluate("~/workdir", METHODS, NUM_IMAGES, check=False,
                                  env={"HOME": root})
  assert result.returncode == 0, result.stderr[-3000:]
  after = os.path.realpath(os.path.join(workdir, "eval"))
  assert after != before and not os.path.exists(before)  # same setting: replaced
  results = eval_util.read_results(workdir)
  for name, m in full_run[1]["methods"].items():
    assert results["methods"][name]["faithfulness"] == m["faithfulness"]


def test_user_mistakes_are_one_line(setup):
  _, workdir, _, config = setup
  for flags, message in ((["--methods=dree"], "did you mean 'dre'"),
                         (["--num_images=-3"], "num_images must be >= 0"),
                         ([f"--config={config}", METHODS, NUM_IMAGES, "--shards=2"],
                          "shards [2] are not in the sample's 2 shards"),
                         (["--shards=a"], "give shard indices from 0"),
                         (["--workdir=/nonexistent"], "has no config.json"),
                         ([f"--config={config}", "--config.dataset.name=imagenet2012"],
                          "config.dataset.boxes_dir")):
    result = eval_util.run_evaluate(workdir, *flags, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [l for l in result.stderr.splitlines() if l.strip()
             and not TENSORFLOW_CHATTER.match(l)]
    assert len(lines) == 1 and message in lines[0], result.stderr[-3000:]


@pytest.mark.slow
def test_estimate_and_refusal_of_a_long_cpu_run(setup):
  """SmoothGrad with 10^9 samples per image: the estimate is days, so without
  --num_images or --yes the run is refused before any work, in one line."""
  _, workdir, _, config = setup
  flags = [f"--config={config}", "--methods=smgrad", "--set=smgrad.samples=1000000000"]
  result = subprocess.run(eval_util.evaluate_command(workdir, *flags),
                          env=util.subprocess_env(), cwd=util.REPO,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 2, result.stderr[-3000:]
  estimate = re.search(r"\[evaluate\] estimate: 1 method x 32 images = ([\d,]+) "
                       r"classifier passes .*: about (.+) \(plus compilation\)",
                       result.stdout)
  assert estimate, result.stdout
  # 10^9 passes per image plus 9 forwards of the curve, twice on 8 images,
  # and the predictions: half a pass each.
  assert int(estimate.group(1).replace(",", "")) == round(
      32 * 1e9 + 0.5 * 9 * (32 + 8) + 0.5 * 32)
  lines = [l for l in result.stderr.splitlines() if l.strip()
           and not TENSORFLOW_CHATTER.match(l)]
  assert len(lines) == 1, result.stderr[-3000:]
  assert re.fullmatch(r"evaluate\.py: error: this run is estimated at .+ on the "
                      r"CPU; evaluate a smaller sample with --num_images "
                      r"\(e\.g\. --num_images=\d+ takes about an hour\) or pass "
                      r"--yes to run it anyway", lines[0]), lines[0]
  assert not glob.glob(os.path.join(workdir, "evaluation", "cache", "smgrad*"))
