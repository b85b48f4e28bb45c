"""One trained workdir through the comparison protocol: what `evaluate.py` calls.

    results = evaluate_workdir("runs/cub_resnet", config)

loads the workdir's classifier (and its DRE estimator), builds the requested
explainers from `dre_jax.explainers` (with `config.eval.settings`), draws the
seeded sample of the evaluation split (`plan`: everything before the work, for
the run-time estimate), runs `protocol.run` (resumable) and publishes
`<workdir>/eval` (`report`; `run_plan`). Each method binds the generators it
needs (`explainers.Method.needs`): the workdir's DRE generator, and the one
trained with the MGnet objective in `config.eval.mgnet_workdir`. The
classifier and the generators compute in `config.model.dtype` (float32, or
bfloat16 on GPUs and TPUs; `dre_jax.config.compute_dtype`), which the cache's
classifier fingerprint and results.json record.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from dre_jax import config as config_lib
from dre_jax import explainers
from dre_jax import parallel
from dre_jax.data import pipelines
from dre_jax.classifier import Classifier
from dre_jax.evaluation import cache as cache_lib
from dre_jax.evaluation import config as eval_config
from dre_jax.evaluation import data as eval_data
from dre_jax.evaluation import protocol as protocol_lib
from dre_jax.evaluation import report
from dre_jax.evaluation import results as results_lib
from dre_jax.evaluation import sanity
from dre_jax.io import workdir as workdir_lib
from dre_jax.io import classifier_dir


@dataclasses.dataclass
class Loaded:
  """What a workdir provides: the classifier, and DRE when trained there."""

  workdir: str
  classifier: Classifier
  meta: dict[str, Any] | None        # estimator.json, None without an estimator
  generator: explainers.Generator | None


def load_workdir(workdir: str, dtype=jnp.float32) -> Loaded:
  """The workdir's classifier and, if trained, its estimator, both computing
  in `dtype`."""
  workdir = workdir_lib.resolve(workdir)
  if workdir_lib.has_estimator(workdir):
    dre, classifier, variables, meta = workdir_lib.load_estimator(workdir, dtype)
    return Loaded(workdir, classifier, meta, explainers.Generator(dre, variables))
  directory = os.path.join(workdir, workdir_lib.CLASSIFIER_DIR)
  if not os.path.isdir(directory):
    raise FileNotFoundError(
        f"{workdir} holds neither a trained estimator nor a classifier; train "
        f"one with `python train.py --config=... --workdir={workdir}`")
  return Loaded(workdir, classifier_dir.load_classifier(directory, dtype),
                None, None)


def build_methods(names: list[str], explicit: bool, loaded: Loaded,
                  mgnet: Loaded | None, settings: dict[str, dict[str, Any]],
                  mesh) -> tuple[list[protocol_lib.EvalMethod], list[str]]:
  """(the methods to run, notes on methods left out).

  Each method is bound (`explainers.bind`) to the DRE generator of `loaded`
  and the MGnet one of `mgnet` where it needs them, their arrays replicated
  over the mesh; a method whose generator is missing is an error when asked
  for (`explicit`), else left out with a note. Settings are checked against
  each method's (a TypeError names the known ones).
  """
  unknown = sorted(set(settings) - set(explainers.names()))
  if unknown:
    raise ValueError(f"config.eval.settings names unknown explainers {unknown}; "
                     f"registered: {', '.join(explainers.names())}")
  trained = dict(dre=loaded.generator, mgnet=mgnet.generator if mgnet else None)
  replicated = {kind: None if g is None else explainers.Generator(
      g.estimator, parallel.replicate(mesh, g.variables))
                for kind, g in trained.items()}
  methods, notes = [], []
  for name in names:
    try:
      bound = explainers.arguments(name, **trained)
    except explainers.MissingGenerator as err:
      problem = (f"{err} (evaluate.py takes the DRE generator from {loaded.workdir} "
                 "and the MGnet one from config.eval.mgnet_workdir)")
      if explicit:
        raise ValueError(problem) from None
      notes.append(f"{name} left out: {problem}")
      continue
    arrays = {k: v for k, v in bound.items() if not _is_static(v)}
    chosen = explainers.check_settings(name, settings.get(name, {}))
    methods.append(protocol_lib.EvalMethod(
        name=name,
        explain=explainers.bind(name, **replicated, settings=chosen),
        settings=chosen,
        fingerprint=cache_lib.tree_fingerprint(arrays) if arrays else "",
        revision=explainers.method(name).revision))
  return methods, notes


def _is_static(value) -> bool:
  """Modules and estimator descriptions (not arrays) stay Python values."""
  return not jax.tree.leaves(value) or dataclasses.is_dataclass(value)


def _class_namers(classifier: Classifier, dataset: str, data_dir: str | None,
                  labels_match: bool) -> tuple[Callable[[int], str], Callable[[int], str] | None]:
  """Names for the explained class t and for the dataset's labels."""
  label_names = None
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    label_names = tfds.builder(dataset, data_dir=data_dir).info.features["label"].names
  except Exception:  # pylint: disable=broad-except  (names are decoration)
    pass
  if classifier.num_classes == 1000 and not labels_match:
    from dre_jax.models import imagenet  # pylint: disable=import-outside-toplevel
    imagenet_names = imagenet.imagenet_class_names()
    target_name = lambda t: imagenet_names[t].split(",")[0]  # noqa: E731
  elif labels_match and label_names:
    target_name = lambda t: label_names[t]  # noqa: E731
  else:
    target_name = str
  label_name = (lambda l: label_names[l]) if label_names else None  # noqa: E731
  return target_name, label_name


@dataclasses.dataclass
class Plan:
  """An evaluation ready to run: what `plan` loaded and chose."""

  config: Any                     # the experiment config
  loaded: Loaded
  methods: list[protocol_lib.EvalMethod]
  sample: protocol_lib.Sample
  protocol: protocol_lib.Protocol
  image_size: int
  labels_match: bool
  mesh: Any


def _data(config) -> tuple[str, str, str | None, str | None]:
  """(dataset, split, data_dir, boxes_dir) of the evaluation; None: unset."""
  return (config.dataset.name, config.eval.split or config.dataset.eval_split,
          config.dataset.data_dir or None,
          config.dataset.get("boxes_dir", "") or None)


def plan(workdir: str, config, *, image_size: int | None = None,
         log: Callable[[str], None] = print) -> Plan:
  """Loads `workdir`, builds the methods and draws the sample of `config`.

  config: the experiment config (`config.dataset`, `config.eval`,
    `config.model.dtype`).
  image_size: evaluate at this size; default the estimator's training size
    (else config.dataset.image_size).
  """
  e = config.eval
  eval_config.validate(e)
  dtype = config_lib.compute_dtype(config.model.dtype)
  loaded = load_workdir(workdir, dtype)
  workdir = loaded.workdir
  mgnet = None
  if e.mgnet_workdir:
    mgnet = load_workdir(e.mgnet_workdir, dtype)
    objective = workdir_lib.trained_objective(mgnet.workdir)
    if objective not in (None, "mgnet"):
      raise ValueError(f"config.eval.mgnet_workdir={e.mgnet_workdir} was trained "
                       f"with objective {objective!r}, not 'mgnet'")
    if (cache_lib.classifier_fingerprint(mgnet.classifier)
        != cache_lib.classifier_fingerprint(loaded.classifier)):
      raise ValueError(f"config.eval.mgnet_workdir={e.mgnet_workdir} explains "
                       f"another classifier than {workdir}; train MGnet for the "
                       "same classifier (config.model.checkpoint=<workdir>/classifier)")
  if image_size is None:
    image_size = loaded.meta["image_size"] if loaded.meta else config.dataset.image_size
    if loaded.meta and config.dataset.image_size != image_size:
      log(f"[evaluate] at {image_size} px, the size the estimator was trained "
          f"at (config.dataset.image_size is {config.dataset.image_size}; "
          "--image_size overrides)")
  if image_size % 32:
    raise ValueError(f"image size {image_size} must be a multiple of 32")

  dataset, split, data_dir, boxes_dir = _data(config)
  if e.explainability and dataset.split(":")[0] == "imagenet2012":
    try:  # the other datasets have boxes or not; M_E is skipped without them
      pipelines.check_boxes("imagenet2012", False, boxes_dir)
    except ValueError as err:
      raise ValueError(f"{err}; or pass --config.eval.explainability=False for "
                       "M_F only") from None
  sample = protocol_lib.make_sample(
      eval_data.split_size(dataset, split, data_dir), e.num_images, e.seed,
      dataset=dataset, split=split, image_size=image_size,
      boxes_dir=boxes_dir or "")
  protocol = protocol_lib.Protocol.from_config(e)
  # A folder of photos has no labels (`dre_jax.data.folder`).
  labels_match = (dataset != config_lib.FOLDER and config.dataset.num_classes
                  in (0, loaded.classifier.num_classes))

  mesh = parallel.make_mesh()
  explicit = bool(e.methods.strip())
  names = eval_config.method_names(e)
  methods, notes = build_methods(names, explicit, loaded, mgnet,
                                 explainers.parse_settings(e.settings), mesh)
  for note in notes:
    log(f"[evaluate] {note}")
  if not methods:
    raise ValueError("no explainer to evaluate; set config.eval.methods")
  log(f"[evaluate] {len(sample)} images of {dataset}/{split} at {image_size} px, "
      f"{len(methods)} methods ({', '.join(m.name for m in methods)}) on "
      f"{jax.device_count()} devices ({jax.process_count()} processes)")
  return Plan(config, loaded, methods, sample, protocol, image_size,
              labels_match, mesh)


def evaluate_workdir(workdir: str, config, *, max_shards: int | None = None,
                     image_size: int | None = None, progress: bool = True,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs the protocol on `workdir` with `config` and publishes its report:
  `run_plan(plan(workdir, config, ...))`. Returns results.json's content,
  plus "report" (the published directory)."""
  return run_plan(plan(workdir, config, image_size=image_size, log=log),
                  max_shards=max_shards, progress=progress, log=log)


def run_plan(p: Plan, *, max_shards: int | None = None,
             shards: Sequence[int] | None = None, progress: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs the protocol of a `plan` (resumable), the randomisation test of
  `sanity` when config.eval.sanity_images > 0, and publishes its report.

  With `shards`, computes only those shards (`protocol.run`: other processes
  may compute the others in the same workdir meanwhile); while any shard of
  any method is still missing it returns {"pending": {method: [shards]}}
  without the test or a report; the run that finds them all tests and
  publishes."""
  config, loaded, methods, sample = p.config, p.loaded, p.methods, p.sample
  protocol, image_size, labels_match, mesh = (p.protocol, p.image_size,
                                              p.labels_match, p.mesh)
  e, workdir = config.eval, loaded.workdir
  dataset, split, data_dir, boxes_dir = _data(config)
  cache = os.path.join(workdir, report.CACHE)
  source = eval_data.tfds_source(dataset, split, image_size=image_size,
                                 data_dir=data_dir,
                                 manual_dir=config.dataset.manual_dir or None,
                                 boxes_dir=boxes_dir)
  dirs = protocol_lib.run(loaded.classifier, methods, sample, source, cache,
                          protocol, labels_match=labels_match,
                          max_shards=max_shards, shards=shards, mesh=mesh,
                          progress=progress)
  if shards is not None:
    limit = sample.shard_limit(protocol.shard_size, max_shards)
    names = [m.name for m in methods]
    done = cache_lib.done_matrix(dirs, names, limit)
    pending = {n: [k for k in range(limit) if not done[k, j]]
               for j, n in enumerate([cache_lib.COMMON, *names])}
    pending = {n: ks for n, ks in pending.items() if ks}
    if pending:
      return {"pending": pending}
  per_method, common = cache_lib.collect(dirs, [m.name for m in methods],
                                         sample, protocol, max_shards)
  checks = None
  if e.sanity_images:  # the first images of the sample
    first = protocol_lib.Sample(sample.positions[:e.sanity_images],
                                sample.description)
    checks = sanity.randomisation_checks(
        methods, loaded.classifier, next(iter(source(first, len(first))))["image"],
        seed=e.seed, resamples=e.bootstrap_resamples,
        place=lambda tree: parallel.replicate(mesh, tree), host=parallel.to_host)
  summary, per_image = results_lib.summarise(
      per_method, common, labels_match=labels_match,
      settings={m.name: m.settings for m in methods},
      pools=eval_config.pools(e), resamples=e.bootstrap_resamples, seed=e.seed,
      sanity_checks=checks)
  partial = sample.shard_limit(protocol.shard_size, max_shards) < sample.num_shards(
      protocol.shard_size)
  results = {
      **summary,
      "workdir": workdir, "dataset": dataset, "split": split,
      "arch": loaded.classifier.spec.name, "image_size": image_size,
      "dtype": config.model.dtype,
      "num_images": int(len(common["index"])), "partial": partial,
      "sample": sample.description,
      "protocol": {**protocol.fingerprint(), "batch_size": protocol.batch_size,
                   "devices": jax.device_count(),
                   "processes": jax.process_count()},
      "controller": (loaded.meta or {}).get("generator"),
      "config": {"dataset": config.dataset.to_dict(), "eval": e.to_dict()},
  }
  if jax.process_index() == 0:
    target_name, label_name = _class_namers(loaded.classifier, dataset, data_dir,
                                            labels_match)
    link, note = report.publish(
        workdir, "eval_partial" if partial else "eval",
        lambda d: report.build_report(d, results, per_image, per_method, common,
                                      class_name=target_name,
                                      label_name=label_name,
                                      labels_match=labels_match), results)
    if note:
      log(f"[evaluate] {note}")
    results["report"] = link
  return results
