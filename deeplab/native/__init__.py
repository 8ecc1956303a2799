"""C helpers for the few loops Python is too slow for, compiled on first use.

The sources here are built with the system C compiler (`$CC`, else cc/gcc/clang) into
`$DEEPLAB_NATIVE_DIR` (default `<cache root>/_native`), named by a hash of the sources so an
edit rebuilds, and loaded with ctypes (no Python headers needed). The build is atomic (temp
file + rename), so concurrent first uses are safe.

Every helper has a pure-Python fallback at its call site: `library()` returns None when there is
no compiler or DEEPLAB_NATIVE=0, after one warning that says what it costs.

    python -m deeplab.native        # build now (setup.sh and the Dockerfile do), print the path
"""

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
from typing import Optional

log = logging.getLogger("deeplab.native")

_SOURCES = ("png_rows.c",)
_CFLAGS = ("-O3", "-shared", "-fPIC", "-std=c99")
_lock = threading.Lock()
_state = {"tried": False, "lib": None}


class NativeUnavailable(RuntimeError):
  """The helpers cannot be built or loaded here."""


def _sources():
  here = os.path.dirname(os.path.abspath(__file__))
  return [os.path.join(here, name) for name in _SOURCES]


def library_path() -> str:
  # Machine type too: a cache folder may be shared by hosts of different architectures.
  digest = hashlib.sha256(" ".join(_CFLAGS + (platform.machine(),)).encode())
  for path in _sources():
    with open(path, "rb") as f:
      digest.update(f.read())
  root = os.environ.get("DEEPLAB_NATIVE_DIR")
  if not root:
    from deeplab.storage import cache_root
    root = os.path.join(cache_root(), "_native")  # '_' cannot start a bucket name: no clash
  return os.path.join(root, f"libdeeplab-{digest.hexdigest()[:16]}.so")


def _compiler() -> str:
  for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
    if cc and shutil.which(cc):
      return cc
  raise NativeUnavailable("no C compiler found (install gcc or set CC)")


def build(path: Optional[str] = None) -> str:
  """Compiles the helpers into `path` (default `library_path()`) unless it exists."""
  path = path or library_path()
  if os.path.exists(path):
    return path
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp"
  cmd = [_compiler(), *_CFLAGS, "-o", tmp, *_sources()]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
      raise NativeUnavailable(f"'{' '.join(cmd)}' failed: {proc.stderr.strip()[:500]}")
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def _load(path: str) -> ctypes.CDLL:
  lib = ctypes.CDLL(path)
  fn = lib.deeplab_unfilter_8bit
  fn.restype = ctypes.c_int64
  fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                 ctypes.c_void_p]
  return lib


def library() -> Optional[ctypes.CDLL]:
  """The loaded helpers, building them if needed; None (after one warning) when unavailable."""
  with _lock:
    if not _state["tried"]:
      _state["tried"] = True
      if os.environ.get("DEEPLAB_NATIVE", "1") == "0":
        log.info("DEEPLAB_NATIVE=0: label PNGs are decoded with Pillow")
      else:
        try:
          _state["lib"] = _load(build())
        except (NativeUnavailable, OSError, subprocess.SubprocessError) as e:
          log.warning("native helpers unavailable (%s): label PNGs are decoded with Pillow, "
                      "which makes build-tfrecords about 2x slower", e)
    return _state["lib"]


def main() -> int:
  try:
    print(build())
  except NativeUnavailable as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
