"""Conversion from a gs:// source to a gs:// output against gcp-storage-emulator."""

from deeplab import storage
from deeplab.datasets import fingerprint
from tests.deeplab.datasets.test_build_trees import convert, make_voc, manifest


def test_gcs_source_to_gcs_output(tmp_path, gcs_bucket, monkeypatch):
  monkeypatch.setenv("DEEPLAB_CACHE_DIR", str(tmp_path / "cache"))
  local = make_voc(str(tmp_path / "src"))
  src = f"gs://{gcs_bucket}/raw/voc"
  storage.sync_dir(local, src)
  fp = fingerprint.compute_fingerprint("voc", src, {})
  # From the object listing alone (crc32c), equal to the local tree's fingerprint.
  assert fp == fingerprint.compute_fingerprint("voc", local, {})
  out = f"gs://{gcs_bucket}/datasets/pascal_voc_seg/{fp}"
  res = convert("voc", src, out)
  assert res["fingerprint"] == fp and not res["noop"]
  m = storage.read_json(storage.join(out, "manifest.json"))
  assert m["fingerprint"] == fp and m["splits"]["train"]["num_examples"] == 3
  names = set(storage.listdir(out))
  shards = {s["name"] for sp in m["splits"].values() for s in sp["shards"]}
  assert shards | {"manifest.json"} == names
  # Same bytes as a local conversion of the same files.
  convert("voc", local, str(tmp_path / "local_out"))
  assert m["splits"] == manifest(str(tmp_path / "local_out"))["splits"]
  assert convert("voc", src, out)["noop"]
