"""One sharded TFRecord writer shared by every converter.

`example_pieces` is a pure function: a checked example -> the bytes of a serialized
`tf.train.Example` holding exactly DeepLab's eight features (features.py). It writes the
protobuf wire format directly (map entries in sorted key order) so that output is
byte-identical run to run and the writer never imports TensorFlow: worker processes start in
milliseconds and the conversion runs where TensorFlow is not installed. Tests check the bytes
against `tf.train.Example` and the original parse spec.

Each shard is validated and written by one task into a hidden staging folder and fsync'ed as
soon as it is done; the caller renames the shards to `<split>-%05d-of-%05d.tfrecord` only once
every shard succeeded. Tasks run in the processes of `worker_pool` (or serially in this one);
results come back in task order.
"""

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import logging
import multiprocessing
import multiprocessing.pool
import operator
import os
import struct
import threading
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import google_crc32c

from deeplab import native
from deeplab.datasets import features
from deeplab.datasets.validate import CheckedExample, LabelRules, check_example
from deeplab.errors import UserInputError

log = logging.getLogger("deeplab.build")


def _varint(n: int) -> bytes:
  if 0 <= n < 0x80:
    return _SMALL_VARINTS[n]
  out = bytearray()
  n &= (1 << 64) - 1  # int64 negatives are 10-byte two's complement varints.
  while True:
    b = n & 0x7F
    n >>= 7
    if n:
      out.append(b | 0x80)
    else:
      out.append(b)
      return bytes(out)


_SMALL_VARINTS = [bytes((i,)) for i in range(0x80)]
_TAG1, _TAG2, _TAG3 = b"\x0a", b"\x12", b"\x1a"  # fields 1, 2, 3, wire type 2


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited protobuf field."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _bytes_entry_head(key_part: bytes, n: int) -> bytes:
  """The map entry for a bytes feature of length n, up to where the n bytes themselves go.

  entry{key(1), value(2): Feature{bytes_list(1): BytesList{value(1): bytes}}}
  """
  bl = 1 + len(_varint(n)) + n
  feat = 1 + len(_varint(bl)) + bl
  entry = len(key_part) + 1 + len(_varint(feat)) + feat
  return b"".join((_TAG1, _varint(entry), key_part, _TAG2, _varint(feat), _TAG1, _varint(bl),
                   _TAG1, _varint(n)))


@functools.lru_cache(maxsize=4096)
def _small_entry(key: str, value) -> bytes:
  """A whole map entry for a constant-ish feature: int64 (packed Int64List) or short bytes."""
  key_part = _KEY_PREFIX[key]
  if isinstance(value, int):
    v = _varint(value)
    feat = _field(3, _field(1, v))  # Feature.int64_list(3) -> packed Int64List.value(1)
  else:
    return _bytes_entry_head(key_part, len(value)) + value
  return _field(1, key_part + _field(2, feat))


# Map entries sorted by key (what SerializeToString(deterministic=True) does); each entry is
# key(1) + value(2); the key part is constant, so it is encoded once.
_KEY_PREFIX = {k: _field(1, k.encode("ascii")) for k in features.ALL_KEYS}
_ORDER = tuple(sorted(features.ALL_KEYS))
# example_pieces writes the entries in this order:
assert _ORDER == (features.IMAGE_CHANNELS, features.IMAGE_ENCODED, features.IMAGE_FILENAME,
                  features.IMAGE_FORMAT, features.IMAGE_HEIGHT, features.LABEL_ENCODED,
                  features.LABEL_FORMAT, features.IMAGE_WIDTH)


def example_pieces(ex: CheckedExample) -> List[bytes]:
  """The serialized tf.train.Example of one checked example (build_data.image_seg_to_tfexample),
  as pieces to write in order: the image and label bytes are never copied."""
  stem = ex.stem.encode("utf-8")
  parts = [
      _small_entry(features.IMAGE_CHANNELS, 3),
      _bytes_entry_head(_KEY_PREFIX[features.IMAGE_ENCODED], len(ex.image_bytes)), ex.image_bytes,
      _bytes_entry_head(_KEY_PREFIX[features.IMAGE_FILENAME], len(stem)), stem,
      _small_entry(features.IMAGE_FORMAT, ex.image_format.encode("ascii")),
      _small_entry(features.IMAGE_HEIGHT, ex.height),
      _bytes_entry_head(_KEY_PREFIX[features.LABEL_ENCODED], len(ex.label_bytes)),
      ex.label_bytes,
      _small_entry(features.LABEL_FORMAT, b"png"),
      _small_entry(features.IMAGE_WIDTH, ex.width),
  ]
  # Example.features(1) wraps Features, whose feature(1) entries are the parts.
  return [_TAG1 + _varint(sum(map(len, parts)))] + parts


def encode_example(ex: CheckedExample) -> bytes:
  return b"".join(example_pieces(ex))


def _mask(crc: int) -> bytes:
  return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _masked_crc(data: bytes) -> bytes:
  return _mask(google_crc32c.value(data))


def tfrecord_pieces(record) -> List[bytes]:
  """TFRecord framing of a record given as bytes or as a list of pieces: [length + masked crc32c
  of the length, *data, masked crc32c of the data]."""
  pieces = [record] if isinstance(record, (bytes, bytearray)) else record
  crc = 0
  for p in pieces:
    crc = google_crc32c.extend(crc, p)
  length = struct.pack("<Q", sum(map(len, pieces)))
  return [length + _masked_crc(length), *pieces, _mask(crc)]


def tfrecord_frame(record: bytes) -> bytes:
  return b"".join(tfrecord_pieces(record))


class _BatchedWriter:
  """Writes pieces with few large writev calls: syscalls dominate many small writes in a VM."""

  def __init__(self, path: str, batch_bytes: int = 4 << 20, max_pieces: int = 512):
    self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    self.pieces: List[bytes] = []
    self.pending = 0
    self.batch_bytes, self.max_pieces = batch_bytes, max_pieces

  def write(self, pieces: Sequence[bytes]) -> None:
    self.pieces.extend(pieces)
    self.pending += sum(map(len, pieces))
    if self.pending >= self.batch_bytes or len(self.pieces) >= self.max_pieces:
      self.flush()

  def flush(self) -> None:
    pieces, self.pieces, self.pending = self.pieces, [], 0
    while pieces:
      n = os.writev(self.fd, pieces)
      while pieces and n >= len(pieces[0]):  # partial writes are rare but legal
        n -= len(pieces[0])
        pieces.pop(0)
      if pieces and n:
        pieces[0] = memoryview(pieces[0])[n:]

  def close(self) -> None:
    try:
      self.flush()
    finally:
      os.close(self.fd)


@dataclasses.dataclass
class ShardTask:
  split: str
  index: int
  num_shards: int
  examples: List  # SourceExample
  rules: LabelRules
  staging_dir: str
  skip_bad: bool


@dataclasses.dataclass
class ShardResult:
  split: str
  index: int
  name: str
  path: str                      # staging path
  sha256: str
  bytes: int
  num_examples: int
  histogram: List[int]
  max_height: int
  max_width: int
  image_formats: List[str]
  skipped: List[Dict[str, str]]
  channel_conversions: List[Dict]
  label_conversions: Dict[str, int]
  source_digests: Dict[str, Tuple[int, str]]  # what fingerprint.list_source_files calls `known`
  # For the drift report: "HxW" -> images of that size; label value -> images that contain it.
  image_sizes: Dict[str, int] = dataclasses.field(default_factory=dict)
  images_per_value: List[int] = dataclasses.field(default_factory=lambda: [0] * 256)


def write_shard(task: ShardTask) -> ShardResult:
  """Checks, encodes and writes one shard into the staging folder."""
  name = features.shard_name(task.split, task.index, task.num_shards)
  path = os.path.join(task.staging_dir, name)
  sha = hashlib.sha256()
  hist = [0] * 256
  result = ShardResult(task.split, task.index, name, path, "", 0, 0, hist, 0, 0, [], [], [], {},
                       {})
  formats = set()
  out = _BatchedWriter(path)
  try:
    for src in task.examples:
      try:
        ex = check_example(src.stem, src.image_path, src.label_path, task.rules,
                           src.image_display, src.label_display, src.label_recipe)
      except UserInputError as e:
        # Kept even when bad examples are not skipped: the caller lists every one at once.
        result.skipped.append({"file": src.image_display, "reason": str(e)})
        continue
      pieces = tfrecord_pieces(example_pieces(ex))
      out.write(pieces)
      for piece in pieces:
        sha.update(piece)
        result.bytes += len(piece)
      result.num_examples += 1
      for display, size, digest in ex.source_digests:
        result.source_digests[display] = (size, digest)
      hist[:] = map(operator.add, hist, ex.histogram)
      size = f"{ex.height}x{ex.width}"
      result.image_sizes[size] = result.image_sizes.get(size, 0) + 1
      for v, n in enumerate(ex.histogram):
        if n:
          result.images_per_value[v] += 1
      result.max_height = max(result.max_height, ex.height)
      result.max_width = max(result.max_width, ex.width)
      formats.add(ex.image_format)
      if ex.channel_conversion:
        result.channel_conversions.append(ex.channel_conversion)
      if ex.label_converted:
        result.label_conversions[ex.label_converted] = (
            result.label_conversions.get(ex.label_converted, 0) + 1)
  finally:
    out.close()
  result.sha256 = sha.hexdigest()
  result.image_formats = sorted(formats)
  return result


def _pool_context():
  # fork: workers start instantly and need nothing from TensorFlow; spawn where fork is absent.
  methods = multiprocessing.get_all_start_methods()
  return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _keep_freed_memory() -> None:
  """Stops glibc from handing each example's buffers back to the kernel.

  A decompressed mask (~190 KB) is above glibc's mmap threshold and a fresh worker's heap top
  is trimmed after every example, so each example faulted its buffers back in: half of a
  worker's page faults and ~10% of its CPU. A no-op where libc has no mallopt.
  """
  try:
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 << 20)
    libc.mallopt(m_trim_threshold, 256 << 20)
  except (OSError, AttributeError):
    pass


@contextlib.contextmanager
def worker_pool(num_workers: int) -> Iterator[Optional[multiprocessing.pool.Pool]]:
  """`num_workers` forked processes for `write_shards` (None for 0: serial in this process).

  Started before the source is listed, so that their start overlaps it; on success the pool is
  closed and its idle workers are reaped in a thread instead of being waited for.
  """
  native.library()  # built and loaded once, before forking, so workers inherit it
  if num_workers <= 0:
    _keep_freed_memory()
    yield None
    return
  pool = _pool_context().Pool(num_workers, initializer=_keep_freed_memory)
  try:
    yield pool
  except BaseException:
    pool.terminate()
    pool.join()
    raise
  pool.close()
  threading.Thread(target=pool.join, name="reap-workers", daemon=True).start()


def write_shards(tasks: Sequence[ShardTask],
                 pool: Optional[multiprocessing.pool.Pool]) -> List[ShardResult]:
  """Runs `write_shard` over all tasks in `pool` (see worker_pool), or serially for None.

  Bad examples are in each result's `skipped`, whether or not the tasks skip them: the caller
  refuses the conversion listing them all (build.convert).
  """
  progress = _Progress(tasks)
  # Each finished shard is fsync'ed in a thread while the next ones are computed: the caller
  # gets only durable shards and mostly does not wait for the disk.
  syncing, synced = concurrent.futures.ThreadPoolExecutor(4), []

  def finished(result: ShardResult) -> ShardResult:
    synced.append(syncing.submit(_fsync, result.path))
    return progress.done(result)

  try:
    done = pool.imap(write_shard, tasks, chunksize=1) if pool else map(write_shard, tasks)
    results = [finished(r) for r in done]
    for f in synced:
      f.result()
    return results
  finally:
    syncing.shutdown(wait=True)


def _fsync(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


class _Progress:
  """One log line per finished shard: conversions of large datasets take minutes."""

  def __init__(self, tasks: Sequence[ShardTask]):
    self.total_shards = len(tasks)
    self.total_examples = sum(len(t.examples) for t in tasks)
    self.shards = self.examples = 0
    self.start = time.monotonic()

  def done(self, result: ShardResult) -> ShardResult:
    self.shards += 1
    self.examples += result.num_examples + len(result.skipped)
    elapsed = max(time.monotonic() - self.start, 1e-9)
    rate = self.examples / elapsed
    eta = (self.total_examples - self.examples) / rate if rate else 0.0
    log.info("shard %d/%d done (%s): %d/%d examples, %.0f images/s, ETA %.0f s", self.shards,
             self.total_shards, result.name, self.examples, self.total_examples, rate, eta)
    return result


def default_num_shards(num_examples: int, examples_per_shard: int = 1000,
                       max_shards: int = 16) -> int:
  """One shard per ~1000 examples, at least 1 and at most `max_shards`."""
  return max(1, min(max_shards, -(-num_examples // examples_per_shard)))


def split_into_shards(examples: Sequence, num_shards: int) -> List[List]:
  """Contiguous chunks of ceil(N/num_shards), like the original converters."""
  per_shard = -(-len(examples) // num_shards) if examples else 0
  return [list(examples[i * per_shard:(i + 1) * per_shard]) for i in range(num_shards)]


def merge_histograms(results: Sequence[ShardResult]) -> Optional[List[int]]:
  total = [0] * 256
  for r in results:
    for v, n in enumerate(r.histogram):
      total[v] += n
  return total
