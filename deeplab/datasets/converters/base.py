"""What a converter hands to the shared pipeline: a list of examples and the dataset's facts.

Converters only look at folder layouts; reading, checking, encoding and writing are the same
for every format (build.py, validate.py, sharded_writer.py).
"""

import dataclasses
import json
import os
import random
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from deeplab.config.fields import coerce_tuples, setting
from deeplab.contract import FORMATS
from deeplab.errors import ConfigError, UserInputError


@dataclasses.dataclass(frozen=True)
class SourceExample:
  split: str
  stem: str                 # stored as image/filename
  image_path: str
  label_path: Optional[str]
  image_display: str        # paths relative to --source, for messages and the manifest
  label_display: str
  # Annotation formats: how the worker draws the label (deeplab.datasets.rasterize); label_path
  # is then the annotation file the label comes from.
  label_recipe: Optional[object] = None


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
  """The converter flags of `build-tfrecords`, flag name for flag name.

  These (with the converter version) decide a conversion's output, so every default here also
  feeds the dataset fingerprint (deeplab.datasets.fingerprint).
  """

  format: Optional[str] = setting(None, "Source layout.", choices=FORMATS, required=True)
  source: Optional[str] = setting(
      None, "Dataset root folder or gs:// prefix (synthetic: where to generate; default a "
      "temporary folder).", kind="string", path=True)
  num_shards: Optional[int] = setting(
      None, "Shards per split (default: voc 4, cityscapes 10, ade20k 4, folder/synthetic one "
      "per ~1000 examples).", kind="integer")
  on_bad_example: str = setting(
      "fail", "fail: stop before writing anything visible; skip: convert the rest, list the bad "
      "ones in manifest.json.", choices=("fail", "skip"))
  image_format: str = setting("jpg", "VOC image extension.", choices=("jpg", "jpeg", "png"))
  dataset_name: Optional[str] = setting(None, "Name in manifest.json (default per format).",
                                        kind="string")
  num_classes: Optional[int] = setting(None, "Number of classes (default per format).",
                                       kind="integer")
  class_names: Optional[Tuple[str, ...]] = setting(
      None, "Comma-separated class names (index order).", kind="list")
  classes_json: Optional[str] = setting(
      None, 'JSON list of class names or {"class_names": [...], "ignore_label": 255} (folder '
      'default: <source>/classes.json).', kind="string", path=True)
  ignore_label: Optional[int] = setting(
      None, "Label value of ignored pixels (default per format).", kind="integer")
  splits: Optional[Tuple[str, ...]] = setting(None, "Splits to convert (default: all found).",
                                              kind="list")
  # name -> list file; the flag's form is a list of name=path.
  split_lists: Optional[Dict[str, str]] = setting(
      None, "folder: name=list_file pairs (default <source>/splits/*.txt).", kind="list",
      path=True)
  annotations: Optional[Tuple[str, ...]] = setting(
      None, "coco, coco_panoptic, label_studio: split=annotation JSON pairs, paths relative to "
      "--source (default: found under --source, see docs/datasets.md).", kind="list")
  ignore_classes: Tuple[str, ...] = setting(
      ("__ignore__",), "Annotation formats: class names painted with the ignore label.",
      kind="list")
  val_ratio: float = setting(0.2, "folder, labelme, label_studio, and a single 'default' "
                             "subset: share of examples in val.")
  seed: int = setting(0, "Seed of the train/val split by --val_ratio and of synthetic data.")
  synthetic_num_train: int = setting(120, "synthetic: training examples.")
  synthetic_num_val: int = setting(30, "synthetic: validation examples.")
  synthetic_image_size: int = setting(64, "synthetic: image side in pixels.")
  synthetic_num_classes: int = setting(5, "synthetic: classes including background.")

  def __post_init__(self):
    coerce_tuples(self, {"class_names": str, "splits": str, "annotations": str,
                         "ignore_classes": str})
    if isinstance(self.split_lists, (list, tuple)):
      object.__setattr__(self, "split_lists", parse_split_lists(self.split_lists))


def parse_split_lists(items: Sequence[str]) -> Optional[Dict[str, str]]:
  """['train=lists/train.txt', ...] -> {'train': 'lists/train.txt', ...}."""
  out = {}
  for item in items:
    name, sep, path = str(item).partition("=")
    if not sep or not name or not path:
      raise ConfigError(f"--split_lists entry {item!r} is not name=path; e.g. "
                           "--split_lists=train=lists/train.txt,val=lists/val.txt")
    out[name] = path
  return out or None


@dataclasses.dataclass(frozen=True)
class BuildJob:
  """build-tfrecords settings that do not change the converted data."""

  output_dir: Optional[str] = setting(
      None, "Where shards and manifest.json go (or gs://).", kind="string", path=True,
      required=True)
  num_workers: int = setting(2, "Worker processes; 0 converts serially.")
  overwrite: bool = setting(False, "Replace an output_dir that holds a different dataset.")


@dataclasses.dataclass
class DatasetSpec:
  """A converter's answer: the examples to convert and the dataset's facts."""

  name: str
  num_classes: int
  ignore_label: int
  class_names: Optional[List[str]]
  examples: List[SourceExample]
  split_names: List[str]                    # every split that must end up non-empty
  default_num_shards: Optional[int] = None  # None: by size
  label_map: Optional[Tuple[int, ...]] = None
  label_map_name: str = ""
  problems: List[Tuple[SourceExample, str]] = dataclasses.field(default_factory=list)
  notes: List[str] = dataclasses.field(default_factory=list)
  # class index -> the source's own id/name/colour for it (annotation formats), for classes.json
  source_ids: Optional[Dict[str, object]] = None


def example(source: str, split: str, stem: str, image_path: str,
            label_path: Optional[str], label_recipe: Optional[object] = None) -> SourceExample:
  root = os.path.join(source, "")

  def rel(p):
    if not p:
      return ""
    # Slicing, not os.path.relpath: relpath costs more than converting a small example.
    r = p[len(root):] if p.startswith(root) else os.path.relpath(p, source)
    return r.replace(os.sep, "/")
  return SourceExample(split, stem, image_path, label_path, rel(image_path), rel(label_path),
                       label_recipe)


def select_splits(found: Sequence[str], wanted: Optional[Sequence[str]], source: str) -> List[str]:
  """`found` filtered to --splits (all when not given); unknown names are an error."""
  if not wanted:
    return list(found)
  missing = [s for s in wanted if s not in found]
  if missing:
    raise UserInputError(f"--splits asks for {', '.join(missing)} but '{source}' has only "
                         f"{', '.join(found) or 'no splits'}; fix --splits")
  return list(wanted)


def read_list_file(path: str, display: str) -> List[str]:
  """Stems from a split list (one per line; image extensions, folders and blank lines ignored)."""
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().split()
  except OSError as e:
    raise UserInputError(f"split list '{display}' cannot be read ({e}); check the path") from None
  stems = []
  for line in lines:
    name = os.path.basename(line)
    root, ext = os.path.splitext(name)
    stems.append(root if ext.lower() in (".jpg", ".jpeg", ".png") else name)
  return stems


def _split_lists(source: str, opts: ConvertOptions) -> Dict[str, str]:
  if opts.split_lists:
    return dict(opts.split_lists)
  folder = os.path.join(source, "splits")
  if not os.path.isdir(folder):
    return {}
  return {f[:-4]: os.path.join(folder, f) for f in sorted(os.listdir(folder))
          if f.endswith(".txt") and not f.startswith(".")}


def ratio_splits(stems: Iterable[str], val_ratio: float, seed: int) -> Dict[str, List[str]]:
  """A seeded shuffle of `stems` into train and (with val_ratio > 0) val."""
  if not 0 <= val_ratio < 1:
    raise UserInputError(f"--val_ratio is {val_ratio}; expected 0 <= ratio < 1")
  order = sorted(stems)
  random.Random(seed).shuffle(order)
  n_val = int(round(len(order) * val_ratio))
  if val_ratio > 0 and len(order) > 1:
    n_val = min(max(n_val, 1), len(order) - 1)
  splits = {"train": sorted(order[n_val:])}
  if val_ratio > 0:
    splits["val"] = sorted(order[:n_val])
  return splits


def split_stems(source: str, opts: ConvertOptions, stems: Iterable[str]) -> Dict[str, List[str]]:
  """split -> stems, from split list files (--split_lists, else <source>/splits/*.txt) or, when
  there are none, a seeded --val_ratio shuffle of `stems` into train/val."""
  lists = _split_lists(source, opts)
  if lists:
    return {s: read_list_file(p, os.path.relpath(p, source)) for s, p in lists.items()}
  return ratio_splits(stems, opts.val_ratio, opts.seed)


def require_dir(path: str, what: str, fix: str) -> str:
  if not os.path.isdir(path):
    raise UserInputError(f"{what} '{path}' does not exist; {fix}")
  return path


def resolve_classes(opts: ConvertOptions, source_json: Optional[str] = None,
                    defaults: Tuple[Optional[int], Optional[Sequence[str]], int] = (None, None, 255)
                    ) -> Tuple[int, Optional[List[str]], int]:
  """num_classes, class_names and ignore_label from flags, a classes JSON, or the defaults.

  The JSON is either a list of names or {"class_names": [...], "num_classes": N,
  "ignore_label": 255}; explicit flags win over it.
  """
  num_classes, names, ignore = defaults
  names = list(names) if names else None
  path = opts.classes_json or (source_json if source_json and os.path.isfile(source_json) else None)
  if path:
    try:
      with open(path, encoding="utf-8") as f:
        data = json.load(f)
    except (OSError, ValueError) as e:
      raise UserInputError(f"classes JSON '{path}' cannot be read ({e}); expected a list of class "
                           'names or {"class_names": [...], "ignore_label": 255}') from None
    if isinstance(data, list):
      data = {"class_names": data}
    if not isinstance(data, dict):
      raise UserInputError(f"classes JSON '{path}' holds {type(data).__name__}; expected a list "
                           "or an object")
    names = [str(n) for n in data["class_names"]] if data.get("class_names") else names
    num_classes = data.get("num_classes", len(names) if names else num_classes)
    ignore = data.get("ignore_label", ignore)
  if opts.class_names:
    names = list(opts.class_names)
    num_classes = len(names)
  if opts.num_classes is not None:
    num_classes = opts.num_classes
  if opts.ignore_label is not None:
    ignore = opts.ignore_label
  if num_classes is None:
    raise UserInputError("the number of classes is unknown; pass --num_classes, --class_names or "
                         "--classes_json (or put classes.json in the source folder)")
  if not 1 <= int(num_classes) <= 256:
    raise UserInputError(f"--num_classes is {num_classes}; expected 1..256 (labels are 8-bit)")
  if names is not None and len(names) != num_classes:
    raise UserInputError(f"{len(names)} class names given but num_classes is {num_classes}; "
                         "give one name per class")
  if not 0 <= int(ignore) <= 255:
    raise UserInputError(f"--ignore_label is {ignore}; expected 0..255")
  return int(num_classes), names, int(ignore)
