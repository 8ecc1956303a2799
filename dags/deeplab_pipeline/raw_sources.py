"""Raw-data Assets, one per annotation source: an export landing there starts a run on it.

A deployment declares its sources in DEEPLAB_RAW_SOURCES, a JSON object of source name ->
settings, e.g.

    {"pets": {"dataset_format": "coco"},
     "streets": {"dataset_format": "cvat_masks", "converter_options": {"val_ratio": 0.1}}}

Each source is the Asset `deeplab_raw_data/<name>` at <storage root>/raw/<name>. Whoever puts a
new export there (the labelling tool's export job, a copy script, a person through the REST
API) posts an event on that Asset; the run it starts converts <storage root>/raw/<name> with
the source's format into dataset `<name>` and trains model `<name>` (unless the source says
`model_name`), so its champion, class check and drift report are those of the same source. The
event's extra may name a subfolder of the source (`{"source_uri": "raw/pets/2026-12"}`, one
folder per export) and a `class_mapping`. The catch-all Asset `deeplab_raw_data`
(DEEPLAB_RAW_DATA_URI) keeps starting runs with the Params' defaults, or with the same keys
in its event's extra.

Pure Python apart from building the Assets (airflow.sdk, at DAG parse time only).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from deeplab.contract import FORMATS, NAME_PATTERN

ENV = "DEEPLAB_RAW_SOURCES"
CATCH_ALL = "deeplab_raw_data"
PREFIX = CATCH_ALL + "/"
# What a source declaration may set (the rest of the run comes from the Params' defaults).
SOURCE_KEYS = ("dataset_format", "converter_options", "class_mapping", "model_name",
               "eval_split", "init_from")
# What an event's extra may set: on a source's Asset, where this export is and how its class
# names map; on the catch-all Asset, also which dataset and format.
EVENT_KEYS = ("source_uri", "converter_options", "class_mapping")
CATCH_ALL_EVENT_KEYS = EVENT_KEYS + ("dataset_name", "dataset_format", "model_name")


class SourceError(ValueError):
  """A source declaration or an asset event that cannot start a run; says how to fix it."""


def parse_sources(text: Optional[str]) -> Dict[str, dict]:
  """DEEPLAB_RAW_SOURCES -> {name: settings}; raises SourceError listing every problem."""
  if not text or not text.strip():
    return {}
  try:
    value = json.loads(text)
  except ValueError as e:
    raise SourceError(f"{ENV} is not JSON ({e}); give an object of source name -> settings, "
                      'e.g. {"pets": {"dataset_format": "coco"}}') from None
  if not isinstance(value, dict):
    raise SourceError(f"{ENV} must be a JSON object of source name -> settings, got {value!r}")
  problems = []
  for name, settings in value.items():
    where = f"{ENV} source {name!r}"
    if not re.fullmatch(NAME_PATTERN, name):
      problems.append(f"{where}: the name may only use letters, digits, '.', '_', '-'")
    if not isinstance(settings, dict):
      problems.append(f"{where}: settings must be an object, e.g. "
                      '{"dataset_format": "coco"}')
      continue
    unknown = sorted(set(settings) - set(SOURCE_KEYS))
    if unknown:
      problems.append(f"{where}: unknown setting(s) {unknown}; known: {', '.join(SOURCE_KEYS)}")
    fmt = settings.get("dataset_format")
    if fmt not in FORMATS or fmt == "synthetic":
      problems.append(f"{where}: dataset_format {fmt!r} must be one of "
                      f"{', '.join(f for f in FORMATS if f != 'synthetic')}")
  if problems:
    raise SourceError("; ".join(problems))
  return value


def asset_name(source: str) -> str:
  return PREFIX + source


def folder(root: str, source: str) -> str:
  """Where a source's exports land: <storage root>/raw/<name>."""
  return "/".join([root.rstrip("/"), "raw", source]) if root.startswith("gs://") else \
      os.path.join(root, "raw", source)


def assets(root: str, sources: Mapping[str, dict]) -> list:
  """One Asset per declared source (built at DAG parse time)."""
  from airflow.sdk import Asset
  return [Asset(name=asset_name(n), uri=_uri(folder(root, n))) for n in sorted(sources)]


def _uri(path: str) -> str:
  return path if "://" in path else "file://" + path


def _check_subfolder(uri: Any, source: str, name: str) -> None:
  home = "raw/" + source
  if not isinstance(uri, str) or not (uri.strip("/") == home or uri.startswith(home + "/")):
    raise SourceError(f"the event on Asset {name!r} sets source_uri {uri!r}; a source's export "
                      f"must be in its own folder: {home} or a folder under it, e.g. "
                      f"{home}/2026-12-01")


def run_settings(events: Iterable[Tuple[str, Mapping[str, Any], Any]],
                 sources: Mapping[str, dict]) -> Tuple[dict, str]:
  """(Params to override, a line for the log) from the events that triggered the run.

  :param events: (asset name, event extra, timestamp) of every triggering event.
  :param sources: parse_sources(DEEPLAB_RAW_SOURCES).
  Raises SourceError: an event from an undeclared source, or an extra it may not set.
  """
  events = sorted(events, key=lambda e: str(e[2]))
  if not events:
    return {}, ""
  name, extra, _ = events[-1]  # the newest export wins; older ones are named in the log
  extra = dict(extra or {})
  older = sorted({n for n, _, _ in events[:-1] if n != name})
  note = (f" (events of {', '.join(older)} in the same run were not converted: post them "
          "again to run on them)" if older else "")
  if name == CATCH_ALL:
    settings, allowed = {}, CATCH_ALL_EVENT_KEYS
  elif name.startswith(PREFIX) and name[len(PREFIX):] in sources:
    source = name[len(PREFIX):]
    settings = {"dataset_name": source, "model_name": source,
                "source_uri": "/".join(("raw", source)), **sources[source]}
    allowed = EVENT_KEYS
  else:
    raise SourceError(f"the run was started by Asset {name!r}, which is not a declared source; "
                      f"add it to {ENV} or post the event on {CATCH_ALL!r}")
  unknown = sorted(set(extra) - set(allowed))
  if unknown:
    raise SourceError(f"the event on Asset {name!r} sets {unknown} in its extra; it may set "
                      f"{', '.join(allowed)}")
  if name != CATCH_ALL and "source_uri" in extra:
    _check_subfolder(extra["source_uri"], name[len(PREFIX):], name)
  fmt = extra.get("dataset_format", settings.get("dataset_format"))
  if fmt is not None and fmt not in FORMATS:
    raise SourceError(f"the event on Asset {name!r} names dataset_format {fmt!r}; use one of "
                      f"{', '.join(FORMATS)}")
  settings.update(extra)
  return settings, (f"Started by new data on Asset {name!r}: " + ", ".join(
      f"{k}={v!r}" for k, v in sorted(settings.items())) + note)
