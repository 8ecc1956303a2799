"""`python -m deeplab build-tfrecords`: any supported layout -> sharded TFRecords + manifest.json.

    python -m deeplab build-tfrecords --format=voc --source=VOCdevkit/VOC2012 \
        --output_dir=gs://bucket/datasets/voc --num_workers=2

One pipeline for every format: the converter lists (split, stem, image, label) and the dataset
facts; the listing is checked (missing labels, duplicate stems, empty splits); every example is
checked and encoded into shards in a hidden staging folder; only when all succeeded are the
shards renamed into place and manifest.json written, last. A complete output whose fingerprint
matches is left alone (a no-op that says so).
"""

import concurrent.futures
import datetime
import glob
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

from deeplab import storage
from deeplab.datasets import converted, converters, features, validate
from deeplab.datasets.converters.base import BuildJob, ConvertOptions, DatasetSpec
from deeplab.datasets.fingerprint import (CONVERTER_VERSION, DEFAULTS, FORMATS, Digests,
                                          compute_fingerprint, fill_digests, fingerprint_of,
                                          list_source_files, normalize_options)
from deeplab.datasets.sharded_writer import (ShardTask, default_num_shards,
                                             merge_histograms, split_into_shards, worker_pool,
                                             write_shards)
from deeplab.errors import UserInputError

log = logging.getLogger("deeplab.build")
_STAGING_PREFIX = ".build-"
CLASSES_JSON = "classes.json"
_SHARD_GLOB = "*-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].tfrecord"


def _fingerprint_options(opts: ConvertOptions) -> Dict[str, Any]:
  return {k: getattr(opts, k) for k in DEFAULTS}


def _problems_error(reasons: List[str]) -> UserInputError:
  if len(reasons) == 1:
    return UserInputError(reasons[0])
  # Every problem at once: fixing an export one error per run is what makes people give up.
  return UserInputError(f"{len(reasons)} problems in the source (fix them, or "
                        "--on_bad_example=skip converts the rest):\n  - " + "\n  - ".join(reasons))


def _bad_examples_error(results) -> Optional[UserInputError]:
  """Every example the workers could not convert (not only the first), each with its file."""
  bad = [s for r in results for s in r.skipped]
  if not bad:
    return None
  return _problems_error([s["reason"] if s["file"] in s["reason"] else
                          f"{s['file']}: {s['reason']}" for s in bad])


def _listing_problems(spec: DatasetSpec, skip: bool) -> List[Dict[str, str]]:
  problems = list(spec.problems) + validate.check_listing(spec.examples)
  if problems and not skip:
    raise _problems_error([reason for _, reason in problems])
  bad = {id(ex) for ex, _ in problems}
  spec.examples = [ex for ex in spec.examples if id(ex) not in bad]
  return [{"file": ex.image_display, "reason": reason} for ex, reason in problems]


def _publish(out_dir: str, output_uri: str, results, manifest: dict) -> None:
  """Replaces any old shards with the staged ones, then writes manifest.json last.

  The shards are durable already (write_shards fsyncs them): after a machine crash no final name
  may point at a short shard.
  """
  old_manifest = os.path.join(out_dir, features.MANIFEST)
  if os.path.exists(old_manifest):
    os.remove(old_manifest)  # Readers must never pair an old manifest with new shards.
  if storage.is_gcs(output_uri):
    for uri in [storage.join(output_uri, features.MANIFEST)] + storage.glob(
        storage.join(output_uri, _SHARD_GLOB)):
      if storage.exists(uri):
        storage.delete(uri)
  for stale in glob.glob(os.path.join(out_dir, _SHARD_GLOB)):
    os.remove(stale)  # Left by a killed or replaced conversion: would match `<split>-*`.
  for r in results:
    os.replace(r.path, os.path.join(out_dir, r.name))
  if manifest.get("class_source_ids"):  # the annotation formats, whose classes are derived
    storage.write_json(os.path.join(out_dir, CLASSES_JSON), classes_json(manifest))
  storage.write_json(os.path.join(out_dir, features.MANIFEST), manifest)


def classes_json(manifest: dict) -> dict:
  """classes.json beside the shards: the class mapping in the form --classes_json reads, so the
  next export of the same project can be pinned to the same indices."""
  return {"class_names": manifest["class_names"], "num_classes": manifest["num_classes"],
          "ignore_label": manifest["ignore_label"], "source_ids": manifest["class_source_ids"]}


def _manifest(spec: DatasetSpec, opts: ConvertOptions, fingerprint: str, results,
              skipped: List[Dict[str, str]]) -> dict:
  splits, conversions, formats = {}, [], set()
  for split in spec.split_names:
    rs = [r for r in results if r.split == split]
    hist = merge_histograms(rs)
    counts = [0 if c == spec.ignore_label else hist[c] for c in range(spec.num_classes)]
    sizes: Dict[str, int] = {}
    for r in rs:
      for k, n in r.image_sizes.items():
        sizes[k] = sizes.get(k, 0) + n
    splits[split] = {
        "num_examples": sum(r.num_examples for r in rs),
        "shards": [{"name": r.name, "sha256": r.sha256, "bytes": r.bytes,
                    "num_examples": r.num_examples} for r in rs],
        "class_pixel_counts": counts, "ignored_pixels": hist[spec.ignore_label],
        "max_height": max(r.max_height for r in rs), "max_width": max(r.max_width for r in rs),
        # What the drift report compares between dataset versions (deeplab.datasets.drift).
        "image_sizes": dict(sorted(sizes.items())),
        "images_per_class": [0 if c == spec.ignore_label else
                             sum(r.images_per_value[c] for r in rs)
                             for c in range(spec.num_classes)],
    }
    for r in rs:
      conversions.extend(r.channel_conversions)
      skipped.extend(r.skipped)
      formats.update(r.image_formats)
  return {
      "format_version": 1, "name": spec.name, "fingerprint": fingerprint,
      "converter": {"format": opts.format, "version": CONVERTER_VERSION,
                    "options": normalize_options(opts.format, _fingerprint_options(opts))},
      "source": opts.source, "num_classes": spec.num_classes, "ignore_label": spec.ignore_label,
      "class_names": spec.class_names, "class_source_ids": spec.source_ids,
      "image_format": formats.pop() if len(formats) == 1 else "mixed",
      "splits": splits, "channel_conversions": conversions, "skipped": skipped,
      "notes": spec.notes,
      "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def _fingerprint_alongside(opts: ConvertOptions, spec: DatasetSpec) -> Callable[[Digests], str]:
  """Starts fingerprinting the source while the workers convert it; each file is read once.

  A thread hashes the source files no worker will read (split lists, unused images); the
  workers hash the rest as they read them. The returned function merges both, so the
  result equals `compute_fingerprint` of the source.
  """
  fp_args = (opts.format, opts.source, _fingerprint_options(opts))
  hashing = concurrent.futures.ThreadPoolExecutor(1)
  if opts.format == "synthetic" or storage.is_gcs(opts.source):
    # Nothing to read: synthetic has no source files, a gs:// listing carries every crc32c.
    future = hashing.submit(compute_fingerprint, *fp_args)
    hashing.shutdown(wait=False)
    return lambda read_by_workers: future.result()
  will_read = {p for ex in spec.examples for p in (ex.image_display, ex.label_display) if p}
  future = hashing.submit(list_source_files, opts.format, opts.source, None, will_read)
  hashing.shutdown(wait=False)

  def fingerprint(read_by_workers: Digests) -> str:
    # Files a worker skipped (bad examples) are read here.
    files = fill_digests(future.result(), opts.source, read_by_workers)
    return fingerprint_of(opts.format, fp_args[2], files)
  return fingerprint


def convert(spec: DatasetSpec, opts: ConvertOptions, out_dir: str, output_uri: str,
            fingerprint: Callable[[Digests], str], num_workers: int, pool) -> dict:
  """Checks and writes `spec` into the local folder `out_dir`; returns the manifest.

  `fingerprint` is called once the shards are written, with the digests of the source files
  the workers read.
  """
  skip = opts.on_bad_example == "skip"
  skipped = _listing_problems(spec, skip)
  by_split = {s: [ex for ex in spec.examples if ex.split == s] for s in spec.split_names}
  validate.check_splits_not_empty({s: len(v) for s, v in by_split.items()}, opts.source)
  rules = validate.LabelRules(spec.num_classes, spec.ignore_label, spec.label_map,
                              spec.label_map_name)
  for stale in os.listdir(out_dir):
    if stale.startswith(_STAGING_PREFIX):  # a killed run's staging folder
      shutil.rmtree(os.path.join(out_dir, stale), ignore_errors=True)
  staging = tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=out_dir)
  try:
    tasks = []
    for split, examples in by_split.items():
      n = opts.num_shards or spec.default_num_shards or default_num_shards(len(examples))
      for i, chunk in enumerate(split_into_shards(examples, n)):
        tasks.append(ShardTask(split, i, n, chunk, rules, staging, skip))
    log.info("converting %d examples of %s into %d shards with %d workers",
             len(spec.examples), ", ".join(spec.split_names), len(tasks), num_workers)
    results = write_shards(tasks, pool)
    error = None if skip else _bad_examples_error(results)
    if error:
      raise error
    validate.check_splits_not_empty(
        {s: sum(r.num_examples for r in results if r.split == s) for s in spec.split_names},
        opts.source)
    read = {}
    for r in results:
      read.update(r.source_digests)
    manifest = _manifest(spec, opts, fingerprint(read), results, skipped)
    _publish(out_dir, output_uri, results, manifest)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return manifest


def build_tfrecords(opts: ConvertOptions, output_dir: str, num_workers: int = 2,
                    overwrite: bool = False) -> Dict[str, Any]:
  """Converts `opts.source` into `output_dir` (local or gs://) unless it is already there.

  Returns:
    The result summary: output_dir, manifest, fingerprint, name, splits (counts), num_examples,
    skipped, noop, seconds.

  Raises:
    UserInputError: bad flags, a bad source layout or (with on_bad_example=fail) a bad example.
  """
  start = time.time()
  if opts.format not in FORMATS:
    raise UserInputError(f"unknown --format {opts.format!r}; choose one of {', '.join(FORMATS)}")
  if opts.format != "synthetic" and not opts.source:
    raise UserInputError(f"--source is required for --format={opts.format}")
  if opts.num_shards is not None and opts.num_shards < 1:
    raise UserInputError(f"--num_shards is {opts.num_shards}; expected >= 1")
  if opts.format != "synthetic" and not storage.is_gcs(opts.source) and not os.path.isdir(
      opts.source):
    raise UserInputError(f"--source '{opts.source}' is not a folder; pass the dataset's root "
                         f"folder for --format={opts.format}")
  existing = converted.read_manifest(output_dir)
  fingerprint = None
  if existing:  # needed first, to tell whether there is anything to do
    fingerprint = compute_fingerprint(opts.format, opts.source, _fingerprint_options(opts))
  noop = False
  if (existing and existing.get("fingerprint") == fingerprint
      and converted.is_complete(output_dir, existing)):
    log.info("%s already holds this dataset (fingerprint %s): nothing to do", output_dir,
             fingerprint)
    manifest, noop = existing, True
  else:
    if existing and existing.get("fingerprint") == fingerprint:
      log.info("%s holds this dataset but shards are missing or changed: converting again",
               output_dir)
    if existing and existing.get("fingerprint") != fingerprint and not overwrite:
      raise UserInputError(
          f"{output_dir} already holds a different dataset (fingerprint "
          f"{existing.get('fingerprint')}, this conversion is {fingerprint}); choose a new "
          "--output_dir (e.g. datasets/<name>/<fingerprint>) or pass --overwrite")
    # Workers fork first: their start overlaps the listing, and no GCS client exists yet.
    with worker_pool(num_workers) as pool, tempfile.TemporaryDirectory(
        prefix="deeplab-synthetic-") as scratch:
      source = opts.source
      if opts.format == "synthetic" and (not source or storage.is_gcs(source)):
        source = scratch
      elif storage.is_gcs(source):
        source = storage.stage_in(source)
      spec = converters.get(opts.format).describe(source, opts)
      for note in spec.notes:
        log.info("%s", note)
      if fingerprint is None:
        get_fingerprint = _fingerprint_alongside(opts, spec)
      else:
        get_fingerprint = lambda read_by_workers, fp=fingerprint: fp  # noqa: E731
      with storage.output_dir(output_dir) as out_dir:
        manifest = convert(spec, opts, str(out_dir), output_dir, get_fingerprint, num_workers,
                           pool)
      fingerprint = manifest["fingerprint"]
  counts = {s: v["num_examples"] for s, v in manifest["splits"].items()}
  result = {"output_dir": output_dir, "manifest": storage.join(output_dir, features.MANIFEST),
            "fingerprint": fingerprint, "name": manifest["name"],
            "num_classes": manifest["num_classes"], "splits": counts,
            "num_examples": sum(counts.values()), "skipped": len(manifest.get("skipped", [])),
            "noop": noop, "seconds": round(time.time() - start, 3)}
  if not noop:
    log.info("wrote %d examples (%s) to %s, fingerprint %s, %d skipped", result["num_examples"],
             ", ".join(f"{k} {v}" for k, v in counts.items()), output_dir, fingerprint,
             result["skipped"])
  return result


def main(parsed) -> int:
  opts = parsed.settings(ConvertOptions)
  job = parsed.settings(BuildJob)
  if not opts.format or not job.output_dir:
    raise UserInputError("--format and --output_dir are required (see --helpfull)")
  result = build_tfrecords(opts, job.output_dir, job.num_workers, job.overwrite)
  result_json = parsed.values["result_json"]
  if result_json:
    storage.write_json(result_json, result)
  return 0
