"""Atomic publish of a converted dataset: a failure while the shards are being renamed into
place leaves no manifest.json (neither the new one nor the previous one) and a rerun converts
again; a shard whose size differs from the manifest's is never "already converted".
Local and gs:// outputs.
"""

import errno
import hashlib
import os

import pytest

from deeplab import storage
from deeplab.datasets import build
from deeplab.datasets.converters.base import ConvertOptions
from tests.deeplab.datasets.test_build_trees import make_voc, manifest

MANIFEST = "manifest.json"


def convert(root: str, out: str, overwrite: bool = False, **options) -> dict:
  return build.build_tfrecords(ConvertOptions(format="voc", source=root, **options), out, 0,
                               overwrite=overwrite)


class _FailAfterFirstShard:
  """os.replace that renames the first shard into place, then fails on the next one.

  Every other rename (e.g. the atomic write of manifest.json) goes through untouched, so a
  manifest written too early would be visible after the failure.
  """

  def __init__(self):
    self.real, self.armed, self.renamed = os.replace, True, []

  def __call__(self, src, dst, *args, **kwargs):
    if self.armed and str(dst).endswith(".tfrecord"):
      if self.renamed:
        raise OSError(errno.EIO, "injected failure after the first shard was renamed", dst)
      self.renamed.append(str(dst))
    return self.real(src, dst, *args, **kwargs)


@pytest.fixture
def publish_failure(monkeypatch):
  fail = _FailAfterFirstShard()
  monkeypatch.setattr(os, "replace", fail)
  return fail


def _visible(out: str):
  return sorted(f for f in os.listdir(out) if not f.startswith("."))


def _assert_whole_conversion(out: str) -> None:
  """manifest.json lists exactly the shards in `out`, with their sizes and sha256."""
  m = manifest(out)
  listed = {s["name"]: s for split in m["splits"].values() for s in split["shards"]}
  assert _visible(out) == sorted([*listed, MANIFEST])
  for name, shard in listed.items():
    data = open(os.path.join(out, name), "rb").read()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (shard["bytes"], shard["sha256"]), name


def _fail_then_rerun(publish_failure, root: str, out: str, **kw) -> dict:
  with pytest.raises(OSError, match="injected failure"):
    convert(root, out, **kw)
  assert len(publish_failure.renamed) == 1  # the failure hit in the middle of the publish
  assert MANIFEST not in os.listdir(out), (
      f"manifest.json is visible in {out} after a publish that failed mid-way: a reader would "
      f"take {_visible(out)} for a complete dataset")
  publish_failure.armed = False
  return convert(root, out, **kw)


def test_failed_publish_of_a_new_dataset_leaves_no_manifest(tmp_path, publish_failure):
  root = make_voc(str(tmp_path / "src"))
  out = str(tmp_path / "out")
  again = _fail_then_rerun(publish_failure, root, out)
  assert not again["noop"]
  _assert_whole_conversion(out)


@pytest.mark.parametrize("change", ["shard_lost", "overwrite"])
def test_failed_publish_hides_the_previous_manifest(tmp_path, publish_failure, change):
  root = make_voc(str(tmp_path / "src"))
  out = str(tmp_path / "out")
  publish_failure.armed = False
  convert(root, out)
  kw = {}
  if change == "shard_lost":  # same dataset, incomplete: converted again
    os.remove(os.path.join(out, "val-00001-of-00004.tfrecord"))
  else:  # a different dataset replaces it
    kw = dict(num_shards=2, overwrite=True)
  publish_failure.armed = True
  again = _fail_then_rerun(publish_failure, root, out, **kw)
  assert not again["noop"]
  _assert_whole_conversion(out)


def test_truncated_shard_is_not_already_converted(tmp_path):
  root = make_voc(str(tmp_path / "src"))
  out = str(tmp_path / "out")
  convert(root, out)
  shard = os.path.join(out, "train-00000-of-00004.tfrecord")
  whole = open(shard, "rb").read()
  with open(shard, "r+b") as f:
    f.truncate(len(whole) - 7)  # same name, short content: e.g. a copy cut off
  again = convert(root, out)
  assert not again["noop"], "a truncated shard was counted as a complete conversion"
  assert open(shard, "rb").read() == whole
  _assert_whole_conversion(out)


def test_truncated_shard_on_gcs_is_not_already_converted(tmp_path, gcs_bucket, monkeypatch):
  monkeypatch.setenv("DEEPLAB_CACHE_DIR", str(tmp_path / "cache"))
  root = make_voc(str(tmp_path / "src"))
  out = f"gs://{gcs_bucket}/datasets/voc/x"
  convert(root, out, num_shards=1)
  shard = storage.join(out, "train-00000-of-00001.tfrecord")
  whole = storage.read_bytes(shard)
  storage.write_bytes(shard, whole[:-7])
  again = convert(root, out, num_shards=1)
  assert not again["noop"], "a truncated shard on gs:// was counted as a complete conversion"
  assert storage.read_bytes(shard) == whole


def test_failed_publish_to_gcs_hides_the_previous_manifest(tmp_path, gcs_bucket, monkeypatch,
                                                           publish_failure):
  monkeypatch.setenv("DEEPLAB_CACHE_DIR", str(tmp_path / "cache"))
  root = make_voc(str(tmp_path / "src"))
  out = f"gs://{gcs_bucket}/datasets/voc/x"
  publish_failure.armed = False
  convert(root, out, num_shards=1)
  publish_failure.armed = True
  with pytest.raises(OSError, match="injected failure"):
    convert(root, out, num_shards=2, overwrite=True)
  assert not storage.exists(storage.join(out, MANIFEST)), (
      "the previous manifest.json is still visible on gs:// after a failed replacement")
  publish_failure.armed = False
  again = convert(root, out, num_shards=2, overwrite=True)
  assert not again["noop"]
  m = storage.read_json(storage.join(out, MANIFEST))
  listed = {s["name"] for split in m["splits"].values() for s in split["shards"]}
  assert set(storage.listdir(out)) == listed | {MANIFEST}
