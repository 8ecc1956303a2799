"""google-cloud-storage plumbing for `deeplab.storage`: the client, checksums, error mapping.

TensorFlow's gs:// filesystem plugin does not load on TF 2.21, so every gs:// byte goes through
google-cloud-storage. The client uses anonymous credentials against an emulator
(STORAGE_EMULATOR_HOST) and application-default credentials otherwise.
"""

import base64
import contextlib
import hashlib
import os
import threading
from typing import Iterator, Optional, Tuple

import google_crc32c

from deeplab.errors import UserInputError

_CHUNK = 1 << 20
_clients = {}
_clients_lock = threading.Lock()


class NotFoundError(UserInputError):
  """A gs:// or local object, folder or bucket does not exist."""


class ChecksumError(IOError):
  """Bytes on disk do not match the object's checksum (transient: a retry may help)."""


def is_gcs(uri: str) -> bool:
  return isinstance(uri, str) and uri.startswith("gs://")


def split_gcs(uri: str) -> Tuple[str, str]:
  """'gs://bucket/a/b' -> ('bucket', 'a/b'); the prefix has no leading slash."""
  if not is_gcs(uri):
    raise UserInputError(f"{uri!r} is not a gs:// URI; expected gs://<bucket>/<path>")
  bucket, _, prefix = uri[len("gs://"):].partition("/")
  if not bucket:
    raise UserInputError(f"{uri!r} has no bucket name; expected gs://<bucket>/<path>")
  return bucket, prefix


def client():
  """A cached `google.cloud.storage.Client` (one per process and endpoint).

  Anonymous credentials and project $GOOGLE_CLOUD_PROJECT (or 'local') when STORAGE_EMULATOR_HOST
  is set; otherwise application-default credentials.
  """
  emulator = os.environ.get("STORAGE_EMULATOR_HOST")
  project = os.environ.get("GOOGLE_CLOUD_PROJECT")
  # Keyed by pid: a client shared across fork() would share its HTTP connection pool.
  key = (os.getpid(), emulator, project)
  with _clients_lock:
    if key not in _clients:
      from google.cloud import storage
      if emulator:
        from google.auth.credentials import AnonymousCredentials
        _clients[key] = storage.Client(project=project or "local",
                                       credentials=AnonymousCredentials())
      else:
        from google.auth import exceptions as auth_exceptions
        try:
          _clients[key] = storage.Client(project=project)
        except auth_exceptions.DefaultCredentialsError as e:
          raise UserInputError(
              f"no Google Cloud credentials for gs:// paths ({e}); run "
              "`gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, "
              "or set STORAGE_EMULATOR_HOST to use an emulator") from e
    return _clients[key]


def retry():
  """Retries transient errors on uploads/deletes too: ours rewrite identical bytes (idempotent)."""
  from google.cloud.storage.retry import DEFAULT_RETRY
  return DEFAULT_RETRY


def blob(uri: str):
  bucket, name = split_gcs(uri)
  return client().bucket(bucket).blob(name)


@contextlib.contextmanager
def errors_for(uri: str) -> Iterator[None]:
  """Turns missing buckets/objects and permission errors into UserInputError naming `uri`."""
  from google.api_core import exceptions as gexc
  try:
    yield
  except gexc.NotFound as e:
    bucket, _ = split_gcs(uri)
    raise NotFoundError(
        f"{uri} does not exist (or bucket gs://{bucket} does not exist); check the path and "
        f"that the bucket exists: `gcloud storage ls {uri}`") from e
  except gexc.Forbidden as e:
    raise UserInputError(
        f"permission denied for {uri}: grant the credentials in use read/write access to the "
        f"bucket ({e})") from e


def list_blobs(uri_prefix: str, delimiter: Optional[str] = None):
  """(blobs, sub-prefixes) under 'gs://bucket/prefix' (the prefix is used as given)."""
  bucket, prefix = split_gcs(uri_prefix)
  with errors_for(uri_prefix):
    pages = client().list_blobs(bucket, prefix=prefix, delimiter=delimiter)
    blobs = list(pages)
    return blobs, sorted(pages.prefixes)


def bytes_crc32c(data: bytes) -> str:
  """base64 of the big-endian crc32c of `data`, the form GCS reports in `blob.crc32c`."""
  return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode("ascii")


def file_crc32c(path: str) -> str:
  """base64 of the big-endian crc32c, the form GCS reports in `blob.crc32c`."""
  crc = google_crc32c.Checksum()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(_CHUNK), b""):
      crc.update(chunk)
  return base64.b64encode(crc.digest()).decode("ascii")


def file_md5(path: str) -> str:
  md5 = hashlib.md5()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(_CHUNK), b""):
      md5.update(chunk)
  return base64.b64encode(md5.digest()).decode("ascii")


def matches(path: str, b) -> bool:
  """True when the local file has the blob's size and checksum (crc32c, else md5)."""
  try:
    if os.path.getsize(path) != b.size:
      return False
  except OSError:
    return False
  if b.crc32c:
    return file_crc32c(path) == b.crc32c
  if b.md5_hash:
    return file_md5(path) == b.md5_hash
  return True  # Composite objects without checksums: the size is all we can check.


def download_verified(b, local_path: str, attempts: int = 2) -> None:
  """Downloads a blob to a temp file beside `local_path`, verifies it, renames it into place.

  A half-downloaded or corrupt file is never visible under its final name.
  """
  uri = f"gs://{b.bucket.name}/{b.name}"
  folder = os.path.dirname(local_path) or "."
  os.makedirs(folder, exist_ok=True)
  for attempt in range(attempts):
    tmp = tmp_name(local_path)
    try:
      with errors_for(uri):
        b.download_to_filename(tmp, checksum=None)
      if b.size is None:
        b.reload()
      if matches(tmp, b):
        os.replace(tmp, local_path)
        return
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
    if attempt + 1 == attempts:
      raise ChecksumError(f"{uri}: downloaded bytes do not match the object's checksum "
                          f"after {attempts} attempts")


def tmp_name(path: str) -> str:
  folder, name = os.path.split(path)
  return os.path.join(folder, f".{name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")


def is_tmp_name(name: str) -> bool:
  return name.startswith(".") and ".tmp-" in name
