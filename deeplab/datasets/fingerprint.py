"""The dataset fingerprint: what the output of a conversion depends on, hashed.

fingerprint = sha256 over (converter version, format, normalised converter options, and the
sorted list of the source files the format reads with their sizes and crc32c content hashes),
first 16 hex characters. crc32c is the content hash GCS keeps for every object, so a gs://
source is fingerprinted from its object listing without downloading a byte, and a local copy of
the same files gives the same fingerprint.

Pure Python (no TensorFlow): the Airflow layer calls `compute_fingerprint` to pick the dataset
folder `datasets/<name>/<fingerprint>/` and to skip a conversion that already exists.
"""

import dataclasses
import fnmatch
import functools
import hashlib
import json
import os
import re
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Tuple

from deeplab.contract import FORMATS
from deeplab.datasets.converters.base import ConvertOptions
from deeplab.errors import UserInputError
from deeplab.storage.gcs import file_crc32c

CONVERTER_VERSION = "2"  # 2: palette labels keep their IDAT data (re-labelled grey)

# Files each format reads, as fnmatch patterns on the POSIX path relative to --source ('*' also
# matches '/'). Files outside these patterns cannot change the output, so they do not count.
SOURCE_PATTERNS = {
    "voc": ("*JPEGImages/*", "*SegmentationClassRaw/*.png", "*SegmentationClass/*.png",
            "*ImageSets/Segmentation/*.txt"),
    "cityscapes": ("*leftImg8bit/*_leftImg8bit.png", "*gtFine/*_labelTrainIds.png",
                   "*gtFine/*_labelIds.png"),
    "ade20k": ("*images/*.jpg", "*annotations/*.png"),
    "folder": ("images/*", "masks/*", "splits/*.txt", "classes.json"),
    "synthetic": (),
    "cvat_masks": ("labelmap.txt", "SegmentationClass/*", "JPEGImages/*",
                   "ImageSets/Segmentation/*.txt", "classes.json"),
}
# The JSON-export formats: the annotation files, the images and any split lists.
_EXPORT_PATTERNS = ("*.json", "*.jpg", "*.jpeg", "*.png", "*.JPG", "*.JPEG", "*.PNG",
                    "splits/*.txt")
SOURCE_PATTERNS.update({f: _EXPORT_PATTERNS for f in ("coco", "coco_panoptic", "labelme",
                                                      "label_studio")})

# The converter flags' defaults and kinds, from the one declaration (ConvertOptions), so that a
# caller passing only some options gets the fingerprint the command would compute.
_OPTION_FIELDS = [f for f in dataclasses.fields(ConvertOptions)
                  if f.name not in ("format", "source")]
DEFAULTS: Dict[str, Any] = {f.name: f.default for f in _OPTION_FIELDS}
_INTS = {f.name for f in _OPTION_FIELDS if f.metadata["kind"] == "integer"}
_LISTS = {f.name for f in _OPTION_FIELDS if f.metadata["kind"] == "list"}
_COMMON = ("num_shards", "on_bad_example", "dataset_name", "num_classes", "class_names",
           "ignore_label", "splits")
RELEVANT_OPTIONS = {
    "voc": _COMMON + ("image_format",),
    "cityscapes": _COMMON,
    "ade20k": _COMMON,
    "folder": _COMMON + ("classes_json", "split_lists", "val_ratio", "seed"),
    "synthetic": _COMMON + ("seed", "synthetic_num_train", "synthetic_num_val",
                            "synthetic_image_size", "synthetic_num_classes"),
}
# The annotation formats: class mapping and split options change their output too.
RELEVANT_OPTIONS.update({f: _COMMON + ("classes_json", "annotations", "ignore_classes",
                                       "split_lists", "val_ratio", "seed")
                         for f in ("coco", "coco_panoptic", "labelme", "cvat_masks",
                                   "label_studio")})


def check_format(fmt: str) -> None:
  if fmt not in FORMATS:
    raise UserInputError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")


@functools.lru_cache(maxsize=None)
def _matcher(patterns: Tuple[str, ...]):
  return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


def _wanted(rel: str, patterns: Tuple[str, ...]) -> bool:
  if rel.startswith(".") or "/." in rel:
    return False  # staging folders, editor files, .DS_Store ...
  return _matcher(patterns)(rel) is not None


Digests = Mapping[str, Tuple[int, str]]  # relative path -> (size, crc32c) already computed


Listing = List[Tuple[str, int, Optional[str]]]  # (relative path, size, crc32c or None)


def list_source_files(fmt: str, source: str, known: Optional[Digests] = None,
                      defer: AbstractSet[str] = frozenset()) -> Listing:
  """(relative POSIX path, size, crc32c) of the files `fmt` reads under `source`, sorted.

  Args:
    fmt: one of FORMATS.
    source: local folder or gs:// prefix (whose listing carries the crc32c: nothing is read).
    known: digests computed by whoever read the files already (the conversion workers); used
      while the size still matches, so each local file is read once.
    defer: local files listed with digest None, for `fill_digests` to complete later (their
      reader supplies them).
  """
  patterns = SOURCE_PATTERNS[fmt]
  if not patterns:
    return []
  known = known or {}
  files = []
  if source.startswith("gs://"):
    from deeplab.storage import gcs
    prefix = source.rstrip("/") + "/"
    _, name_prefix = gcs.split_gcs(prefix)
    blobs, _ = gcs.list_blobs(prefix)
    for b in blobs:
      rel = b.name[len(name_prefix):]
      if rel and not rel.endswith("/") and _wanted(rel, patterns):
        files.append((rel, int(b.size), b.crc32c))
  else:
    if not os.path.isdir(source):
      raise UserInputError(f"--source '{source}' is not a folder; pass the dataset's root folder")
    root = os.path.join(source, "")
    for folder, dirs, names in os.walk(source):
      dirs[:] = sorted(d for d in dirs if not d.startswith("."))
      prefix = folder[len(root):].replace(os.sep, "/")
      prefix = prefix + "/" if prefix else ""
      for n in names:
        rel = prefix + n
        if _wanted(rel, patterns):
          files.append((rel, os.path.getsize(os.path.join(folder, n)), None))
  return fill_digests(sorted(files), source, known, defer)


def fill_digests(files: Listing, source: str, known: Optional[Digests] = None,
                 defer: AbstractSet[str] = frozenset()) -> Listing:
  """Completes a listing's missing digests: from `known` while the size matches, else by
  reading the file (except those in `defer`, left None)."""
  known = known or {}
  out = []
  for rel, size, digest in files:
    if digest is None and rel not in defer:
      have = known.get(rel)
      digest = have[1] if have and have[0] == size else file_crc32c(os.path.join(source, rel))
    out.append((rel, size, digest))
  return out


def _read_small(path: str) -> str:
  if path.startswith("gs://"):
    from deeplab import storage
    return storage.read_text(path)
  with open(path, encoding="utf-8") as f:
    return f.read()


def _coerce(key: str, value: Any) -> Any:
  """Flag values as the command parses them: '5' -> 5, 'a,b' -> ['a', 'b'] (callers such as the
  DAG pass strings), so that both compute the same fingerprint."""
  if value is None or value == "":
    return DEFAULTS[key]
  try:
    if key in _INTS:
      return int(value)
    if key == "val_ratio":
      return float(value)
  except (TypeError, ValueError):
    raise UserInputError(f"converter option {key}={value!r} is not a number") from None
  if key in _LISTS and isinstance(value, str):
    value = [v.strip() for v in value.split(",") if v.strip()]
  if isinstance(value, (list, tuple)):
    return list(value)
  return value


def normalize_options(fmt: str, options: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
  """The options that change the output of `fmt`, with defaults filled in.

  Files named by options (classes_json, split_lists) count by their content, not their path.
  """
  check_format(fmt)
  options = dict(options or {})
  unknown = set(options) - set(DEFAULTS) - {"num_workers", "source", "output_dir", "format",
                                            "result_json", "overwrite"}
  if unknown:
    raise UserInputError(f"unknown converter options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
  out = {}
  for key in RELEVANT_OPTIONS[fmt]:
    value = _coerce(key, options.get(key, DEFAULTS[key]))
    if key == "classes_json" and value:
      value = hashlib.sha256(_read_small(value).encode("utf-8")).hexdigest()
    if key == "split_lists" and value:
      if not isinstance(value, dict):  # the flag's form: ["train=lists/train.txt", ...]
        value = dict(item.split("=", 1) for item in value)
      value = {k: hashlib.sha256(_read_small(v).encode("utf-8")).hexdigest()
               for k, v in sorted(dict(value).items())}
    out[key] = value
  return out


def compute_fingerprint(format: str, source: Optional[str],  # noqa: A002 (flag name)
                        options: Optional[Mapping[str, Any]] = None,
                        known: Optional[Digests] = None) -> str:
  """The 16-hex-character fingerprint of converting `source` with `options`.

  Args:
    format: one of FORMATS.
    source: local folder or gs:// prefix (ignored by 'synthetic', which is fully determined by
      its options).
    options: converter options by flag name (num_shards, num_classes, seed, ...); missing ones
      take the command's defaults, irrelevant ones (num_workers, output_dir) are ignored.
    known: digests of files already read (see list_source_files); the result is the same.

  Returns:
    16 lowercase hex characters.
  """
  files = [] if format == "synthetic" else list_source_files(format, source, known)
  return fingerprint_of(format, options, files)


def fingerprint_of(format: str, options: Optional[Mapping[str, Any]],  # noqa: A002
                   files: List[Tuple[str, int, str]]) -> str:
  """The fingerprint of a complete `list_source_files` listing."""
  opts = normalize_options(format, options)
  payload = {"version": CONVERTER_VERSION, "format": format, "options": opts,
             "files": [list(f) for f in files]}
  blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
  return hashlib.sha256(blob).hexdigest()[:16]
