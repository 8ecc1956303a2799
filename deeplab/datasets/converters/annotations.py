"""What the annotation-tool converters share (coco, coco_panoptic, labelme, cvat_masks,
label_studio): reading their files, naming classes, finding images, collecting problems.

They hand `DatasetSpec`s to the same pipeline as every other format; the only difference is
that each example carries a `rasterize.LabelRecipe` (the worker draws its label) instead of a
mask file. Every problem found while reading the annotations is collected, not raised, so that
one run lists them all, each naming its file and the fix.
"""

import json
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from deeplab.datasets.converters.base import (ConvertOptions, DatasetSpec, SourceExample,
                                              ratio_splits, resolve_classes, select_splits)
from deeplab.errors import UserInputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Names tools use for "no object here": they become class 0 when the dataset has a background.
BACKGROUND_NAMES = ("background", "_background_", "__background__")
# A tool's single unnamed subset (CVAT's "default", one Label Studio export): split by val_ratio.
DEFAULT_SUBSET = "default"


def read_json(path: str, display: str):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except FileNotFoundError:
    raise UserInputError(f"annotation file '{display}' does not exist; check --annotations or "
                         "the export's layout (docs/datasets.md)") from None
  except (OSError, ValueError) as e:
    raise UserInputError(f"annotation file '{display}' cannot be read as JSON ({e}); export "
                         "it again from the labelling tool") from None


class Problems:
  """Problems found while reading annotations, each tied to the file it is about."""

  def __init__(self, source: str):
    self.source = source
    self.items: List[Tuple[SourceExample, str]] = []

  def add(self, display: str, reason: str, split: str = "") -> None:
    # Not an example that will be converted: a record of the file at fault.
    self.items.append((SourceExample(split, "", "", None, display, ""), reason))


def annotation_files(source: str, opts: ConvertOptions,
                     found: Dict[str, List[str]]) -> Dict[str, List[str]]:
  """split -> annotation files (paths relative to --source), from --annotations or `found`.

  --annotations entries are split=path, a split may be named several times (COCO instances +
  stuff files); paths stay inside --source.
  """
  if not opts.annotations:
    if not found:
      raise UserInputError(f"no annotation files found under '{source}'; pass "
                           "--annotations=split=path/to/export.json (relative to --source)")
    return found
  out: Dict[str, List[str]] = {}
  for item in opts.annotations:
    split, sep, rel = str(item).partition("=")
    if not sep:
      split, rel = DEFAULT_SUBSET, split
    parts = rel.replace("\\", "/").split("/")
    if not split or not rel or os.path.isabs(rel) or ".." in parts:
      raise UserInputError(f"--annotations entry {item!r} must be split=path with a path "
                           "relative to --source, e.g. --annotations=train=annotations/"
                           "instances_train.json,val=annotations/instances_val.json")
    if not os.path.isfile(os.path.join(source, rel)):
      raise UserInputError(f"--annotations names '{rel}' but there is no such file under "
                           f"'{source}'; fix the path (relative to --source)")
    out.setdefault(split, []).append(rel)
  return out


def split_plan(stems_by_split: Dict[str, List[str]], opts: ConvertOptions, source: str,
               notes: List[str]) -> Dict[str, List[str]]:
  """The splits to convert: a lone 'default' subset is shuffled into train/val (--val_ratio);
  --splits selects."""
  if list(stems_by_split) == [DEFAULT_SUBSET] and not opts.splits:
    stems_by_split = ratio_splits(stems_by_split[DEFAULT_SUBSET], opts.val_ratio, opts.seed)
    notes.append(f"one unnamed subset: split into train/val with --val_ratio {opts.val_ratio} "
                 f"and --seed {opts.seed}")
  splits = select_splits(list(stems_by_split), opts.splits, source)
  return {s: stems_by_split[s] for s in splits}


class ClassTable:
  """Class names (index order) and the label value each annotation name gets.

  Pinned classes (--classes_json or --class_names) keep a dataset's indices the same from one
  export to the next; a name outside them is a problem, never a silent new index. Otherwise the
  classes are the names found, in the order given, after 'background' (index 0) when the
  format has one. Names in --ignore_classes get the ignore label.
  """

  def __init__(self, opts: ConvertOptions, found: Sequence[str], background: bool,
               source_json: Optional[str] = None):
    self.ignore_names = set(opts.ignore_classes or ())
    self.pinned = bool(opts.classes_json or opts.class_names
                       or (source_json and os.path.isfile(source_json)))
    if self.pinned:
      num, names, ignore = resolve_classes(opts, source_json)
      if names is None:
        raise UserInputError("--num_classes alone cannot name an annotation export's classes; "
                             "pass --class_names or --classes_json")
    else:
      names = ["background"] if background else []
      for name in found:
        if name not in names and name not in self.ignore_names and not (
            background and name in BACKGROUND_NAMES):
          names.append(name)
      if not names:
        raise UserInputError("the annotations name no class; label at least one region")
      num, names, ignore = resolve_classes(opts, defaults=(len(names), names, 255))
    self.names, self.num_classes, self.ignore_label = list(names), num, ignore
    self.background = background
    self._index = {n: i for i, n in enumerate(self.names)}
    self.where = (opts.classes_json or source_json or "--class_names") if self.pinned else ""

  def value(self, name: str) -> Optional[int]:
    """The label value of annotation name `name`, or None when it is not a known class."""
    if name in self.ignore_names:
      return self.ignore_label
    if name in self._index:
      return self._index[name]
    if self.background and name in BACKGROUND_NAMES and self.names[0] in BACKGROUND_NAMES:
      return 0
    return None

  def unknown(self, name: str, what: str) -> str:
    """The message for a name `value` does not know."""
    if self.pinned:
      return (f"{what} has class {name!r}, which is not one of the {self.num_classes} classes of "
              f"{self.where} ({', '.join(self.names)}); add it there (a new class changes the "
              "model's output), rename it in the labelling tool, or list it in --ignore_classes")
    return f"{what} has class {name!r}, which no category defines; fix the export"

  def spec(self, opts: ConvertOptions, name: str, examples: List[SourceExample],
           splits: Iterable[str], problems: Problems, notes: List[str],
           source_ids: Optional[Dict[str, object]] = None) -> DatasetSpec:
    return DatasetSpec(name=opts.dataset_name or name, num_classes=self.num_classes,
                       ignore_label=self.ignore_label, class_names=self.names,
                       examples=examples, split_names=list(splits), problems=problems.items,
                       notes=notes, source_ids=source_ids)


class ImageFinder:
  """Finds an annotation's image by its recorded name in the export's usual folders."""

  def __init__(self, source: str, folders: Sequence[str]):
    self.source = source
    self.folders = [f for f in dict.fromkeys(folders) if os.path.isdir(f)]

  def find(self, name: str, strip_prefix: bool = False) -> Optional[str]:
    name = name.replace("\\", "/")
    candidates = [name, os.path.basename(name)]
    if strip_prefix:  # Label Studio uploads are stored as <8 hex>-<original name>
      candidates.append(re.sub(r"^[0-9a-f]{8}-", "", os.path.basename(name)))
    for folder in self.folders:
      for c in candidates:
        path = os.path.join(folder, c)
        if os.path.isfile(path):
          return path
    return None

  def missing(self, name: str, what: str) -> str:
    where = ", ".join(os.path.relpath(f, self.source).replace(os.sep, "/") + "/"
                      for f in self.folders) or "(no image folder exists)"
    return (f"{what}: image '{name}' is not in {where}; copy the image there or remove it "
            "from the export")


def stem_of(name: str) -> str:
  return os.path.splitext(os.path.basename(name.replace("\\", "/")))[0]
