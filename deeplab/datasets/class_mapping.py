"""Are two dataset versions' classes the same? Asked before a warm start from the champion and
before the gate compares the champion with a candidate: a model's output index i means class i
of the dataset it was trained on, so a renamed, added, removed or moved class makes the two
incomparable (and a warm start silently wrong) unless a mapping says how the names correspond.

Pure Python: the Airflow side (resolve_config, the gate) calls it.
"""

from typing import Any, Dict, Mapping, Optional, Sequence


def parse_mapping(value: Any) -> Dict[str, str]:
  """A class mapping {"old name": "new name"} from a run conf (dict or JSON object string)."""
  if value in (None, "", {}):
    return {}
  if isinstance(value, str):
    import json
    try:
      value = json.loads(value)
    except ValueError:
      value = None
  if not isinstance(value, Mapping) or not all(
      isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
    raise ValueError(f"class_mapping {value!r} must be a JSON object of old class name -> new "
                     'class name, e.g. {"kitten": "cat"}')
  return dict(value)


def difference(old: Optional[Sequence[str]], new: Optional[Sequence[str]],
               mapping: Optional[Mapping[str, str]] = None, old_what: str = "the champion's",
               new_what: str = "this run's") -> str:
  """Why `old` (renamed by `mapping`) and `new` class lists are not the same classes, or "".

  Unknown names (a dataset without class names) compare by count only.
  """
  mapping = dict(mapping or {})
  if old is None or new is None:
    return ""
  renamed = [mapping.get(n, n) for n in old]
  if renamed == list(new):
    return ""
  removed = [n for n in renamed if n not in new]
  added = [n for n in new if n not in renamed]
  parts = []
  if removed:
    parts.append("removed " + ", ".join(repr(n) for n in removed))
  if added:
    parts.append("added " + ", ".join(repr(n) for n in added))
  if removed and added and len(removed) == len(added):
    parts.append("(renamed? " + ", ".join(f'"{a}": "{b}"' for a, b in zip(removed, added))
                 + " in class_mapping says so)")
  moved = [n for i, n in enumerate(renamed) if n in new and new.index(n) != i]
  if moved and not removed and not added:
    parts.append("moved " + ", ".join(f"{n!r} ({renamed.index(n)} -> {list(new).index(n)})"
                                      for n in moved))
  return (f"{new_what} dataset's classes differ from {old_what}: {'; '.join(parts)}. Output "
          "index i means class i of the training data, so the models are not comparable: pin "
          "the old indices with converter_options.classes_json (the classes.json beside the "
          "old dataset's shards; a removed class keeps its index) or give class_mapping for "
          "renamed classes")
