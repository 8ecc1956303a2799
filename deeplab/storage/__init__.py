"""Local paths and gs://bucket/prefix URIs behind one small API.

Every path flag of `python -m deeplab` accepts either. Reads of gs:// folders go through
`stage_in` (a checksum-verified local cache); outputs are written to a local folder and uploaded
with `sync_dir`/`output_dir`, which upload the commit marker (manifest.json, `checkpoint`, ...)
last so a reader that waits for the marker never sees a partial folder. Local writes are atomic
(temp file in the same folder + os.replace).
"""

import contextlib
import fnmatch
import json
import os
import posixpath
import shutil
import tempfile
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from deeplab.storage import gcs
from deeplab.errors import UserInputError
from deeplab.storage.gcs import NotFoundError, client, is_gcs, split_gcs

__all__ = [
    "NotFoundError", "client", "is_gcs", "split_gcs", "join", "exists", "read_bytes", "read_text",
    "read_json", "write_bytes", "write_text", "write_json", "listdir", "file_sizes", "glob", "delete",
    "delete_tree", "upload_file", "download_file", "stage_in", "output_dir", "sync_dir",
    "cache_root",
]


def join(base: str, *parts: str) -> str:
  """os.path.join for local paths, '/'-joining for gs:// URIs."""
  if is_gcs(base):
    return posixpath.join(base, *parts)
  return os.path.join(base, *parts)


def _folder_prefix(uri: str) -> Tuple[str, str]:
  bucket, prefix = split_gcs(uri)
  prefix = prefix.rstrip("/")
  return bucket, (prefix + "/" if prefix else "")


def exists(uri: str) -> bool:
  """True for an existing file or folder (a gs:// prefix with at least one object under it)."""
  if not is_gcs(uri):
    return os.path.exists(uri)
  bucket, name = split_gcs(uri)
  if not name.rstrip("/"):
    with gcs.errors_for(uri):
      return client().lookup_bucket(bucket) is not None
  if not name.endswith("/"):
    with gcs.errors_for(uri):
      if gcs.blob(uri).exists():
        return True
  bucket, prefix = _folder_prefix(uri)
  with gcs.errors_for(uri):
    return any(True for _ in client().list_blobs(bucket, prefix=prefix, max_results=1))


def read_bytes(uri: str) -> bytes:
  if is_gcs(uri):
    with gcs.errors_for(uri):
      return gcs.blob(uri).download_as_bytes()
  try:
    with open(uri, "rb") as f:
      return f.read()
  except FileNotFoundError as e:
    raise NotFoundError(f"{uri} does not exist; check the path") from e


def read_text(uri: str) -> str:
  return read_bytes(uri).decode("utf-8")


def read_json(uri: str) -> Any:
  text = read_text(uri)
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise UserInputError(f"{uri} is not valid JSON ({e}); fix or regenerate the file") from e


def write_bytes(uri: str, data: bytes) -> None:
  """Writes atomically: a reader sees the old content or the new, never a part."""
  if is_gcs(uri):
    # A single-request upload creates the object atomically.
    with gcs.errors_for(uri):
      gcs.blob(uri).upload_from_string(data, retry=gcs.retry())
    return
  folder = os.path.dirname(os.path.abspath(uri))
  os.makedirs(folder, exist_ok=True)
  tmp = gcs.tmp_name(os.path.abspath(uri))
  try:
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, uri)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text(uri: str, text: str) -> None:
  write_bytes(uri, text.encode("utf-8"))


def write_json(uri: str, obj: Any) -> None:
  write_text(uri, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def listdir(uri: str) -> List[str]:
  """Sorted names directly under a folder/prefix (sub-folders without a trailing slash)."""
  if not is_gcs(uri):
    try:
      return sorted(os.listdir(uri))
    except FileNotFoundError as e:
      raise NotFoundError(f"folder {uri} does not exist; check the path") from e
  bucket, prefix = _folder_prefix(uri)
  blobs, prefixes = gcs.list_blobs(f"gs://{bucket}/{prefix}", delimiter="/")
  names = {b.name[len(prefix):] for b in blobs}
  names.update(p[len(prefix):].rstrip("/") for p in prefixes)
  names.discard("")
  return sorted(names)


def file_sizes(uri: str) -> Dict[str, int]:
  """Name -> size in bytes of the files directly under a folder/prefix (one listing on gs://)."""
  if not is_gcs(uri):
    try:
      return {e.name: e.stat().st_size for e in os.scandir(uri) if e.is_file()}
    except FileNotFoundError as e:
      raise NotFoundError(f"folder {uri} does not exist; check the path") from e
  bucket, prefix = _folder_prefix(uri)
  blobs, _ = gcs.list_blobs(f"gs://{bucket}/{prefix}", delimiter="/")
  return {b.name[len(prefix):]: int(b.size) for b in blobs if b.name != prefix}


def glob(pattern_uri: str) -> List[str]:
  """Sorted full paths/URIs whose last component matches the fnmatch pattern."""
  folder, pattern = (posixpath if is_gcs(pattern_uri) else os.path).split(pattern_uri)
  if not exists(folder):
    return []
  return [join(folder, n) for n in listdir(folder) if fnmatch.fnmatchcase(n, pattern)]


def delete(uri: str) -> None:
  """Deletes one file/object; a missing one is not an error."""
  if is_gcs(uri):
    from google.api_core import exceptions as gexc
    try:
      gcs.blob(uri).delete(retry=gcs.retry())
    except gexc.NotFound:
      pass
    return
  with contextlib.suppress(FileNotFoundError):
    os.remove(uri)


def delete_tree(uri: str) -> None:
  """Deletes a folder/prefix and everything under it; a missing one is not an error."""
  if not is_gcs(uri):
    if os.path.isfile(uri) or os.path.islink(uri):
      os.remove(uri)
    shutil.rmtree(uri, ignore_errors=True)
    return
  bucket, prefix = _folder_prefix(uri)
  if not prefix:
    raise UserInputError(f"refusing to delete the whole bucket {uri}; name a folder in it")
  blobs, _ = gcs.list_blobs(f"gs://{bucket}/{prefix}")
  for b in blobs:
    delete(f"gs://{bucket}/{b.name}")


def upload_file(local_path: str, uri: str) -> None:
  """Copies a local file to `uri` (gs:// upload verified by crc32c, or an atomic local copy)."""
  if not os.path.isfile(local_path):
    raise NotFoundError(f"{local_path} does not exist; nothing to upload to {uri}")
  if not is_gcs(uri):
    os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
    tmp = gcs.tmp_name(os.path.abspath(uri))
    try:
      shutil.copyfile(local_path, tmp)
      os.replace(tmp, uri)
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
    return
  b = gcs.blob(uri)
  crc = gcs.file_crc32c(local_path)
  with gcs.errors_for(uri):
    b.upload_from_filename(local_path, retry=gcs.retry())
  if b.crc32c and b.crc32c != crc:
    raise gcs.ChecksumError(f"uploaded {local_path} to {uri} but the stored crc32c differs")


def download_file(uri: str, local_path: str) -> None:
  """Copies `uri` to a local file; the final name appears only once the bytes are verified."""
  if not is_gcs(uri):
    upload_file(uri, local_path)  # local -> local: the same atomic copy
    return
  b = gcs.blob(uri)
  with gcs.errors_for(uri):
    b.reload()
  gcs.download_verified(b, local_path)


def cache_root() -> str:
  return os.environ.get("DEEPLAB_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "deeplab")


def stage_in(uri: str, cache_dir: Optional[str] = None, pattern: Optional[str] = None) -> str:
  """Returns a local path holding the content of `uri`.

  Local paths are returned unchanged. A gs:// folder is mirrored to
  `<cache_dir or $DEEPLAB_CACHE_DIR or ~/.cache/deeplab>/<bucket>/<prefix>`: files already there
  with the right size and crc32c (md5 when no crc32c) are reused, missing or corrupt ones are
  downloaded again, files no longer in the bucket are removed. A URI naming a file (or a
  checkpoint prefix such as `.../model.ckpt-100`) stages the matching sibling objects and
  returns the local equivalent of the URI. `pattern` (fnmatch on names directly in the folder,
  e.g. 'train-*') stages only the matching files of a folder.

  Raises:
    NotFoundError: nothing exists at `uri`.
  """
  if not is_gcs(uri):
    if not os.path.exists(uri) and not glob(uri + "*"):
      raise NotFoundError(f"{uri} does not exist; check the path")
    return uri
  bucket, name = split_gcs(uri)
  name = name.rstrip("/")
  root = os.path.join(cache_dir or cache_root(), bucket)
  local = os.path.join(root, *name.split("/")) if name else root
  folder_prefix = name + "/" if name else ""
  blobs, _ = gcs.list_blobs(f"gs://{bucket}/{folder_prefix}")
  blobs = [b for b in blobs if not b.name.endswith("/")]
  if pattern:
    if not blobs:
      raise NotFoundError(f"folder {uri} is empty or does not exist; check the path with "
                          f"`gcloud storage ls {uri}`")
    blobs = [b for b in blobs if fnmatch.fnmatchcase(b.name[len(folder_prefix):], pattern)]
    _mirror(blobs, folder_prefix, local, prune=True, pattern=pattern)
    return local
  if blobs:
    _mirror(blobs, folder_prefix, local, prune=True)
    return local
  parent = posixpath.dirname(name)
  siblings, _ = gcs.list_blobs(f"gs://{bucket}/{name}")
  # Only objects in the same folder: 'model.ckpt-1' must not pull 'model.ckpt-1/…' nor sub-dirs.
  siblings = [b for b in siblings if posixpath.dirname(b.name) == parent]
  if not siblings:
    raise NotFoundError(
        f"{uri} does not exist: no object or folder by that name in gs://{bucket}; check the "
        f"path with `gcloud storage ls {uri}`")
  _mirror(siblings, parent + "/" if parent else "", os.path.dirname(local), prune=False)
  return local


def _mirror(blobs, prefix: str, local_dir: str, prune: bool, pattern: Optional[str] = None) -> None:
  wanted = set()
  for b in blobs:
    rel = b.name[len(prefix):]
    path = os.path.join(local_dir, *rel.split("/"))
    wanted.add(os.path.normpath(path))
    if not gcs.matches(path, b):
      gcs.download_verified(b, path)
  if prune:
    for path in _walk_files(local_dir):
      if pattern and not fnmatch.fnmatchcase(path, pattern):
        continue  # Outside the staged subset: not ours to judge.
      if gcs.is_tmp_name(posixpath.basename(path)):
        continue  # Another process's download in flight.
      if os.path.normpath(os.path.join(local_dir, path)) not in wanted:
        os.remove(os.path.join(local_dir, path))


def _walk_files(local_dir: str) -> Iterator[str]:
  """Relative POSIX-style paths of the files under `local_dir`, sorted."""
  found = []
  for folder, _, files in os.walk(local_dir):
    for f in files:
      rel = os.path.relpath(os.path.join(folder, f), local_dir)
      found.append(rel.replace(os.sep, "/"))
  return iter(sorted(found))


def _commit_rank(rel: str, commit_last: Sequence[str]) -> int:
  for i, name in enumerate(commit_last):
    if rel == name or posixpath.basename(rel) == name:
      return i + 1
  return 0


def sync_dir(local_dir: str, uri: str, commit_last: Iterable[str] = (),
             replace: bool = False) -> None:
  """Uploads files under `local_dir` that are new or changed (size + crc32c) to folder `uri`.

  Files named in `commit_last` (a relative path or a base name) are uploaded after all others,
  in the order given, so a reader waiting for them sees a complete folder. Remote files that
  are not local are left alone, unless `replace`: then a gs:// folder ends up holding exactly
  the local files (a stage re-run into the same prefix leaves nothing stale): the old commit
  files are deleted first, the remote files that are not local are deleted before the new
  commit files are uploaded. A local `uri` gets atomic copies.
  """
  _sync(local_dir, uri, tuple(commit_last), include_commit=True, replace=replace)


def _uncommit(uri: str, commit_last: Sequence[str]) -> None:
  """Deletes a gs:// folder's commit files: readers see it as unfinished until they are back."""
  for name in commit_last:
    delete(join(uri, name))


def _keep_remote(rel: str) -> bool:
  """Remote files a replacing sync must never delete: a live job's lease, uploads in flight."""
  from deeplab.storage.lease import LEASE_NAME
  base = posixpath.basename(rel)
  return base == LEASE_NAME or gcs.is_tmp_name(base)


def _sync(local_dir: str, uri: str, commit_last: Tuple[str, ...], include_commit: bool,
          replace: bool = False) -> None:
  files = [f for f in _walk_files(local_dir) if not gcs.is_tmp_name(posixpath.basename(f))]
  if not include_commit:
    files = [f for f in files if not _commit_rank(f, commit_last)]
  files.sort(key=lambda rel: _commit_rank(rel, commit_last))
  if not is_gcs(uri):
    if os.path.abspath(local_dir) == os.path.abspath(uri):
      return
    for rel in files:
      src, dst = os.path.join(local_dir, rel), os.path.join(uri, *rel.split("/"))
      if not (os.path.exists(dst) and os.path.getsize(dst) == os.path.getsize(src)
              and gcs.file_crc32c(dst) == gcs.file_crc32c(src)):
        upload_file(src, dst)
    return
  bucket, prefix = _folder_prefix(uri)
  remote_blobs, _ = gcs.list_blobs(f"gs://{bucket}/{prefix}")
  remote = {b.name[len(prefix):]: b for b in remote_blobs}
  body = [f for f in files if not _commit_rank(f, commit_last)]
  commits = [f for f in files if _commit_rank(f, commit_last)]
  if replace:  # from here until the new commit files are up, readers see an unfinished folder
    _uncommit(uri, [r for r in remote if _commit_rank(r, commit_last)])
  for rel in body:
    src = os.path.join(local_dir, rel)
    if not (rel in remote and gcs.matches(src, remote[rel])):
      upload_file(src, f"gs://{bucket}/{prefix}{rel}")
  if replace:
    for stale in sorted(set(remote) - set(files)):
      if not _keep_remote(stale) and not _commit_rank(stale, commit_last):
        delete(f"gs://{bucket}/{prefix}{stale}")
  for rel in commits:
    src = os.path.join(local_dir, rel)
    if replace or not (rel in remote and gcs.matches(src, remote[rel])):
      upload_file(src, f"gs://{bucket}/{prefix}{rel}")


class OutputDir(str):
  """The local folder yielded by `output_dir` (a str); `.sync()` uploads it now."""

  uri: str
  commit_last: Tuple[str, ...]

  def sync(self, commit: bool = True, replace: bool = False) -> None:
    """Uploads new/changed files; with commit=False the commit_last files are held back.

    With replace, remote files that are not local are deleted (see sync_dir).
    """
    if is_gcs(self.uri):
      _sync(str(self), self.uri, self.commit_last, include_commit=commit, replace=replace)


@contextlib.contextmanager
def output_dir(uri: str, commit_last: Sequence[str] = ("manifest.json",)) -> Iterator[OutputDir]:
  """Yields a local folder whose content ends up at `uri`.

  Local `uri`: the folder itself (created). gs:// `uri`: a fresh local staging folder; call
  `.sync()` on it to upload early (e.g. after each checkpoint); on clean exit everything is
  uploaded with the `commit_last` names last, then the staging folder is removed. On an
  exception nothing more is uploaded. A gs:// folder written before (a re-run) loses its
  commit files on entry and, on clean exit, every file this run did not write: a reader never
  takes an old file, or a folder half-rewritten, for this run's output.
  """
  if is_gcs(uri):
    split_gcs(uri)  # Fail fast on a malformed URI.
    _uncommit(uri, commit_last)
    local = tempfile.mkdtemp(prefix="deeplab-out-")
  else:
    os.makedirs(uri, exist_ok=True)
    local = uri
  out = OutputDir(local)
  out.uri = uri
  out.commit_last = tuple(commit_last)
  try:
    yield out
    out.sync(replace=True)
  finally:
    if is_gcs(uri):
      shutil.rmtree(local, ignore_errors=True)
