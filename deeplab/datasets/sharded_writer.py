"""One sharded TFRecord writer shared by every converter.

`encode_example` is a pure function: a checked example -> the bytes of a serialized
`tf.train.Example` holding exactly DeepLab's eight features (features.py). It writes the
protobuf wire format directly (map entries in sorted key order) so that output is
byte-identical run to run and the writer never imports TensorFlow: worker processes start in
milliseconds and the conversion runs where TensorFlow is not installed. Tests check the bytes
against `tf.train.Example` and the original parse spec.

Each shard is validated and written by one task into a hidden staging folder; the caller
fsyncs the shards (`fsync_all`) and renames them to `<split>-%05d-of-%05d.tfrecord` only once
every shard succeeded. Tasks run in
`num_workers` processes (0 = serially in this process); results come back in task order.
"""

import dataclasses
import hashlib
import logging
import multiprocessing
import operator
import os
import struct
import time
from typing import Dict, List, Optional, Sequence, Tuple

import google_crc32c

from deeplab.datasets import features
from deeplab.datasets.validate import CheckedExample, LabelRules, check_example
from deeplab.errors import UserInputError

log = logging.getLogger("deeplab.build")


def _varint(n: int) -> bytes:
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


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited protobuf field."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _wrap(tag: bytes, parts: List[bytes], length: int):
  """Prefixes (parts, length) with a length-delimited field header; no payload is copied."""
  head = tag + _varint(length)
  return [head] + parts, len(head) + length


_TAG1, _TAG2, _TAG3 = b"\x0a", b"\x12", b"\x1a"  # fields 1, 2, 3, wire type 2


def _bytes_feature(value: bytes):
  # Feature.bytes_list(1) -> BytesList.value(1)
  return _wrap(_TAG1, *_wrap(_TAG1, [value], len(value)))


def _int64_feature(value: int):
  # Feature.int64_list(3) -> packed Int64List.value(1)
  v = _varint(value)
  return _wrap(_TAG3, *_wrap(_TAG1, [v], len(v)))


# Map entries sorted by key (what SerializeToString(deterministic=True) does); each entry is
# key(1) + value(2); the key part is constant, so it is encoded once.
_KEY_PREFIX = {k: _field(1, k.encode("ascii")) for k in features.ALL_KEYS}
_ORDER = tuple(sorted(features.ALL_KEYS))
_CHANNELS_3 = _int64_feature(3)
_LABEL_PNG = _bytes_feature(b"png")
_FORMATS = {"jpeg": _bytes_feature(b"jpeg"), "png": _bytes_feature(b"png")}


def encode_example(ex: CheckedExample) -> bytes:
  """The serialized tf.train.Example of one checked example (build_data.image_seg_to_tfexample).

  Built as a list of pieces joined once: the image bytes are copied a single time.
  """
  values = {
      features.IMAGE_ENCODED: _bytes_feature(ex.image_bytes),
      features.IMAGE_FILENAME: _bytes_feature(ex.stem.encode("utf-8")),
      features.IMAGE_FORMAT: _FORMATS[ex.image_format],
      features.IMAGE_HEIGHT: _int64_feature(ex.height),
      features.IMAGE_WIDTH: _int64_feature(ex.width),
      features.IMAGE_CHANNELS: _CHANNELS_3,
      features.LABEL_ENCODED: _bytes_feature(ex.label_bytes),
      features.LABEL_FORMAT: _LABEL_PNG,
  }
  parts, length = [], 0
  for key in _ORDER:
    # Features.feature(1) is a map<string, Feature>: one (key=1, value=2) message per entry.
    value_parts, value_len = _wrap(_TAG2, *values[key])
    key_part = _KEY_PREFIX[key]
    entry, entry_len = _wrap(_TAG1, [key_part] + value_parts, len(key_part) + value_len)
    parts += entry
    length += entry_len
  return b"".join(_wrap(_TAG1, parts, length)[0])  # Example.features(1)


def _masked_crc(data: bytes) -> bytes:
  crc = google_crc32c.value(data)
  return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord_pieces(record: bytes) -> Tuple[bytes, bytes, bytes]:
  """TFRecord framing: (length + masked crc32c of the length, data, masked crc32c of the data)."""
  length = struct.pack("<Q", len(record))
  return length + _masked_crc(length), record, _masked_crc(record)


def tfrecord_frame(record: bytes) -> bytes:
  return b"".join(tfrecord_pieces(record))


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


def write_shard(task: ShardTask) -> ShardResult:
  """Checks, encodes and writes one shard into the staging folder."""
  name = features.shard_name(task.split, task.index, task.num_shards)
  path = os.path.join(task.staging_dir, name)
  sha = hashlib.sha256()
  hist = [0] * 256
  result = ShardResult(task.split, task.index, name, path, "", 0, 0, hist, 0, 0, [], [], [], {})
  formats = set()
  with open(path, "wb") as f:
    for src in task.examples:
      try:
        ex = check_example(src.stem, src.image_path, src.label_path, task.rules,
                           src.image_display, src.label_display)
      except UserInputError as e:
        if not task.skip_bad:
          raise
        result.skipped.append({"file": src.image_display, "reason": str(e)})
        continue
      for piece in tfrecord_pieces(encode_example(ex)):
        f.write(piece)
        sha.update(piece)
        result.bytes += len(piece)
      result.num_examples += 1
      hist[:] = map(operator.add, hist, ex.histogram)
      result.max_height = max(result.max_height, ex.height)
      result.max_width = max(result.max_width, ex.width)
      formats.add(ex.image_format)
      if ex.channel_conversion:
        result.channel_conversions.append(ex.channel_conversion)
      if ex.label_converted:
        result.label_conversions[ex.label_converted] = (
            result.label_conversions.get(ex.label_converted, 0) + 1)
  result.sha256 = sha.hexdigest()
  result.image_formats = sorted(formats)
  return result


def _fsync(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def fsync_all(paths: Sequence[str]) -> None:
  """fsyncs files concurrently: the filesystem folds concurrent fsyncs into few journal commits."""
  from concurrent.futures import ThreadPoolExecutor
  with ThreadPoolExecutor(max(1, min(16, len(paths)))) as pool:
    list(pool.map(_fsync, paths))


def _pool_context():
  # fork: workers start instantly and need nothing from TensorFlow; spawn where fork is absent.
  methods = multiprocessing.get_all_start_methods()
  return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def write_shards(tasks: Sequence[ShardTask], num_workers: int) -> List[ShardResult]:
  """Runs `write_shard` over all tasks; num_workers=0 runs serially in this process.

  Raises:
    UserInputError: the first bad example (in task order) when tasks do not skip bad examples.
  """
  progress = _Progress(tasks)
  if num_workers <= 0 or len(tasks) <= 1:
    return [progress.done(write_shard(t)) for t in tasks]
  pool = _pool_context().Pool(min(num_workers, len(tasks)))
  try:
    results = [progress.done(r) for r in pool.imap(write_shard, tasks, chunksize=1)]
    pool.close()
    return results
  finally:
    pool.terminate()
    pool.join()


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
