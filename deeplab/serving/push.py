"""The versioned push: a SavedModel becomes `<model_dir>/<next integer>/`, complete or absent.

TF Serving (and KServe's TensorFlow runtime, Vertex AI's prebuilt TensorFlow containers) poll
`<base_path>/<model_name>/` and load the highest integer child. The push therefore promises:

* A server never sees a partial version. Locally the version is written into a dot folder
  next to the versions and renamed to its number (a rename is atomic). gs:// has no rename:
  every other object is uploaded first and `saved_model.pb`, the file the SavedModel loader
  reads first, last; a folder without it is not a loadable version, and is finished by the
  retry of the push that wrote it, or removed by the next push.
* Versions only go up. One push at a time holds the model folder's lease
  (deeplab.storage.lease): a second push waits, then fails as transient, and numbers its
  version after everything it finds.
* Idempotent. Each version records its push id in `assets.extra/deeplab_push.json`
  (SavedModel's place for files the loader ignores); a retry of the same push, after a kill at
  any point, finds its version (or its unfinished gs:// folder) and ends with exactly one.
* Retention keeps the newest `keep` versions and never removes the one being served (the
  newest), the rollback target (the version served before this push) or a protected one.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import posixpath
import shutil
import tempfile
from typing import Callable, Dict, Iterable, List, Mapping, Optional

from deeplab import storage
from deeplab.errors import UserInputError
from deeplab.storage import gcs, lease

log = logging.getLogger(__name__)

MODEL_FILE = "saved_model.pb"           # written last on gs://: its presence completes a version
PUSH_RECORD = "assets.extra/deeplab_push.json"
STAGING_PREFIX = ".push-"               # local: a version being written (not an integer name)
DELETING_PREFIX = ".deleting-"          # local: a version being removed by retention
DEFAULT_KEEP = 5


@dataclasses.dataclass(frozen=True)
class Version:
  number: int
  complete: bool
  push_id: Optional[str]


@dataclasses.dataclass(frozen=True)
class PushResult:
  version: int
  version_dir: str
  previous: Optional[int]    # the newest complete version before this push (rollback target)
  reused: bool               # this push id had already written `version` (a retry)
  removed: tuple             # versions retention deleted

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def version_number(name: str) -> Optional[int]:
  """A positive integer folder name (what TF Serving takes for a version), else None."""
  return int(name) if name.isdigit() and int(name) > 0 else None


def _read_push_id(uri: str) -> Optional[str]:
  try:
    return json.loads(storage.read_text(uri)).get("push_id")
  except (storage.NotFoundError, ValueError, AttributeError):
    return None


def list_versions(model_dir: str) -> Dict[int, Version]:
  """The integer versions under `model_dir` (absent folder: none)."""
  if not storage.exists(model_dir):
    return {}
  if storage.is_gcs(model_dir):
    bucket, prefix = split_folder(model_dir)
    blobs, _ = gcs.list_blobs(f"gs://{bucket}/{prefix}")
    files: Dict[int, set] = {}
    for b in blobs:
      head, _, rest = b.name[len(prefix):].partition("/")
      number = version_number(head)
      if number is not None:
        files.setdefault(number, set()).add(rest)
    return {n: Version(n, MODEL_FILE in names,
                       _read_push_id(storage.join(model_dir, str(n), PUSH_RECORD))
                       if PUSH_RECORD in names else None)
            for n, names in files.items()}
  out = {}
  for name in storage.listdir(model_dir):
    number = version_number(name)
    path = os.path.join(model_dir, name)
    if number is not None and os.path.isdir(path):
      out[number] = Version(number, os.path.exists(os.path.join(path, MODEL_FILE)),
                            _read_push_id(os.path.join(path, *PUSH_RECORD.split("/"))))
  return out


def newest(model_dir: str) -> Optional[int]:
  """The version a server that serves the latest loads (highest complete), or None."""
  complete = [v.number for v in list_versions(model_dir).values() if v.complete]
  return max(complete) if complete else None


def split_folder(uri: str):
  bucket, prefix = gcs.split_gcs(uri)
  prefix = prefix.rstrip("/")
  return bucket, (prefix + "/" if prefix else "")


def _files(folder: str) -> List[str]:
  """Relative POSIX paths of the files under a local folder, saved_model.pb last."""
  out = []
  for here, _, names in os.walk(folder):
    for name in names:
      out.append(os.path.relpath(os.path.join(here, name), folder).replace(os.sep, "/"))
  return sorted(out, key=lambda rel: (rel == MODEL_FILE, rel))


def _put(src: str, dst: str) -> None:
  """Copies one file into the serving folder (the single copy step; tests kill around it)."""
  if storage.is_gcs(dst):
    storage.upload_file(src, dst)  # crc32c-verified
    return
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  shutil.copyfile(src, dst)


def _copy_version(source: str, dest: str) -> None:
  for rel in _files(source):
    _put(os.path.join(source, *rel.split("/")), storage.join(dest, *rel.split("/")))


def _check_source(source_local: str) -> None:
  if not os.path.isfile(os.path.join(source_local, MODEL_FILE)):
    raise UserInputError(f"{source_local} holds no {MODEL_FILE}: pass the export's saved_model/ "
                         "folder (python -m deeplab export writes <export_path>/saved_model/)")


def _staging_name(push_id: str) -> str:
  return STAGING_PREFIX + hashlib.sha256(push_id.encode()).hexdigest()[:16]


def _remove_local(path: str) -> None:
  """Renames a folder out of the version namespace first, then deletes it."""
  parent, name = os.path.split(path)
  doomed = os.path.join(parent, f"{DELETING_PREFIX}{name}-{os.getpid()}")
  os.rename(path, doomed)
  shutil.rmtree(doomed, ignore_errors=True)


def _remove_version(model_dir: str, number: int) -> None:
  path = storage.join(model_dir, str(number))
  if storage.is_gcs(model_dir):
    storage.delete(storage.join(path, MODEL_FILE))  # not loadable from here on
    storage.delete_tree(path)
  else:
    _remove_local(path)


def _clean_leftovers(model_dir: str, versions: Mapping[int, Version], push_id: str) -> None:
  """Removes what killed pushes left: local dot folders, other pushes' unfinished gs:// folders.

  Safe because the caller holds the model folder's lease: no other push is writing.
  """
  if storage.is_gcs(model_dir):
    for v in versions.values():
      if not v.complete and v.push_id != push_id:
        log.warning("removing unfinished version %d of push %s (no %s)", v.number, v.push_id,
                    MODEL_FILE)
        storage.delete_tree(storage.join(model_dir, str(v.number)))
    return
  for name in os.listdir(model_dir):
    if name.startswith((STAGING_PREFIX, DELETING_PREFIX)):
      shutil.rmtree(os.path.join(model_dir, name), ignore_errors=True)


def retain(model_dir: str, keep: int, protect: Iterable[int] = ()) -> List[int]:
  """Deletes complete versions beyond the newest `keep` (0: keep all), except `protect`.

  Returns:
    The removed version numbers.
  """
  if keep <= 0:
    return []
  complete = sorted((v.number for v in list_versions(model_dir).values() if v.complete),
                    reverse=True)
  keep_set = set(complete[:keep]) | set(protect)
  removed = [n for n in complete if n not in keep_set]
  for number in removed:
    log.info("retention (keep %d): removing version %d of %s", keep, number, model_dir)
    _remove_version(model_dir, number)
  return removed


def push(source: str, model_dir: str, push_id: str, *, keep: int = DEFAULT_KEEP,
         protect: Iterable[int] = (), check: Optional[Callable[[str], None]] = None,
         record: Optional[Mapping] = None, wait_seconds: Optional[float] = None) -> PushResult:
  """Pushes the SavedModel folder `source` (local or gs://) as the next version of `model_dir`.

  Args:
    source: a SavedModel folder (holding saved_model.pb).
    model_dir: `<base_path>/<model_name>`, local or gs://.
    push_id: identifies this push across retries: a version already written with it is reused.
    keep: versions retention keeps (0: all); the served and rollback target always stay.
    protect: version numbers retention must not remove.
    check: called with a local folder holding exactly the bytes being pushed, before the
      version becomes visible; raising aborts the push and leaves the versions as they were.
    record: extra fields for the push record.
    wait_seconds: how long to wait for another push's lease (default: the lease's).

  Raises:
    UserInputError: `source` is not a SavedModel; anything `check` raises.
    lease.FolderBusyError: another push held the model folder for longer than the wait.
  """
  if not push_id:
    raise UserInputError("a push needs a non-empty push id")
  if keep < 0:
    raise UserInputError(f"keep must be >= 0 (0 keeps every version), got {keep}")
  local_model_dir = not storage.is_gcs(model_dir)
  if local_model_dir:
    os.makedirs(model_dir, exist_ok=True)
  with lease.hold(model_dir.rstrip("/"), f"push {push_id}", wait_seconds=wait_seconds):
    versions = list_versions(model_dir)
    complete = sorted(v.number for v in versions.values() if v.complete)
    mine = [v for v in versions.values() if v.push_id == push_id]
    done = [v.number for v in mine if v.complete]
    if done:
      version = max(done)
      previous = max((n for n in complete if n < version), default=None)
      log.info("push %s already wrote version %d of %s: nothing to copy", push_id, version,
               model_dir)
      removed = retain(model_dir, keep, {version, *([previous] if previous else []), *protect})
      return PushResult(version, storage.join(model_dir, str(version)), previous, True,
                        tuple(removed))
    previous = complete[-1] if complete else None
    _clean_leftovers(model_dir, versions, push_id)
    unfinished = [v.number for v in mine if not v.complete]  # gs:// only: resume into it
    version = unfinished[0] if unfinished else max(versions, default=0) + 1
    src_local = storage.stage_in(source)
    _check_source(src_local)
    doc = {"push_id": push_id, "version": version, "source": source,
           "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
               timespec="seconds"), **dict(record or {})}
    if local_model_dir:
      staging = os.path.join(model_dir, _staging_name(push_id))
      _copy_version(src_local, staging)
      storage.write_json(os.path.join(staging, *PUSH_RECORD.split("/")), doc)
      if check:
        try:
          check(staging)
        except BaseException:
          shutil.rmtree(staging, ignore_errors=True)
          raise
      final = os.path.join(model_dir, str(version))
      if os.path.lexists(final):  # cannot happen under the lease; never overwrite a version
        raise RuntimeError(f"{final} appeared while this push held the lease")
      os.rename(staging, final)   # the version appears complete
    else:
      if check:
        with tempfile.TemporaryDirectory(prefix="deeplab-push-") as tmp:
          copy = os.path.join(tmp, "model")
          shutil.copytree(src_local, copy)
          storage.write_json(os.path.join(copy, *PUSH_RECORD.split("/")), doc)
          check(copy)  # the same bytes the upload verifies by crc32c
      final = storage.join(model_dir, str(version))
      storage.write_json(storage.join(final, PUSH_RECORD), doc)   # first: names the push
      _copy_version(src_local, final)                             # saved_model.pb last
    log.info("pushed %s as version %d of %s", source, version, model_dir)
    removed = retain(model_dir, keep, {version, *([previous] if previous else []), *protect})
    return PushResult(version, storage.join(model_dir, str(version)), previous, False,
                      tuple(removed))
