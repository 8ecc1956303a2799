"""deeplab.storage against local folders and the gcp-storage-emulator fixture."""

import os

import pytest

from deeplab import storage
from deeplab.storage import gcs
from deeplab.errors import UserInputError


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path):
  """A folder URI of each kind: a tmp folder and a fresh emulator bucket."""
  if request.param == "local":
    return str(tmp_path / "root")
  bucket = request.getfixturevalue("gcs_bucket")
  return f"gs://{bucket}/root"


def test_split_and_join():
  assert storage.is_gcs("gs://b/x") and not storage.is_gcs("/tmp/x")
  assert storage.split_gcs("gs://b/a/c.txt") == ("b", "a/c.txt")
  assert storage.split_gcs("gs://b") == ("b", "")
  assert storage.join("gs://b/a", "c", "d.txt") == "gs://b/a/c/d.txt"
  assert storage.join("/x", "y") == os.path.join("/x", "y")
  with pytest.raises(UserInputError, match="gs://"):
    storage.split_gcs("gs:///nobucket")


def test_round_trip_list_glob_delete(root):
  storage.write_text(storage.join(root, "a.txt"), "hello")
  storage.write_bytes(storage.join(root, "train-00000-of-00002.tfrecord"), b"\x00\x01")
  storage.write_bytes(storage.join(root, "train-00001-of-00002.tfrecord"), b"\x02")
  storage.write_json(storage.join(root, "sub", "m.json"), {"k": [1, 2]})
  assert storage.read_text(storage.join(root, "a.txt")) == "hello"
  assert storage.read_json(storage.join(root, "sub", "m.json")) == {"k": [1, 2]}
  assert storage.listdir(root) == ["a.txt", "sub", "train-00000-of-00002.tfrecord",
                                   "train-00001-of-00002.tfrecord"]
  assert storage.glob(storage.join(root, "train-*")) == [
      storage.join(root, "train-00000-of-00002.tfrecord"),
      storage.join(root, "train-00001-of-00002.tfrecord")]
  assert storage.glob(storage.join(root, "nothere", "*")) == []
  assert storage.exists(storage.join(root, "sub"))
  assert storage.exists(storage.join(root, "a.txt"))
  assert not storage.exists(storage.join(root, "b.txt"))
  storage.delete(storage.join(root, "a.txt"))
  storage.delete(storage.join(root, "a.txt"))  # Missing is fine.
  assert not storage.exists(storage.join(root, "a.txt"))
  storage.delete_tree(storage.join(root, "sub"))
  assert not storage.exists(storage.join(root, "sub"))
  assert storage.listdir(root) == ["train-00000-of-00002.tfrecord",
                                   "train-00001-of-00002.tfrecord"]


def test_missing_object_names_uri(root):
  missing = storage.join(root, "nope.json")
  with pytest.raises(UserInputError, match="nope.json"):
    storage.read_json(missing)
  with pytest.raises(UserInputError, match="nope.json"):
    storage.stage_in(missing)


def test_missing_bucket_names_bucket(gcs_bucket):
  with pytest.raises(UserInputError, match="gs://no-such-bucket-x"):
    storage.read_bytes("gs://no-such-bucket-x/a.txt")
  with pytest.raises(UserInputError, match="gs://no-such-bucket-x"):
    storage.listdir("gs://no-such-bucket-x/a")


def test_local_write_is_atomic_and_leaves_no_temp(tmp_path):
  target = tmp_path / "x" / "f.json"
  storage.write_json(str(target), {"a": 1})
  storage.write_json(str(target), {"a": 2})
  assert storage.read_json(str(target)) == {"a": 2}
  assert os.listdir(target.parent) == ["f.json"]


def test_upload_download_file(gcs_bucket, tmp_path):
  src = tmp_path / "src.bin"
  src.write_bytes(os.urandom(3000))
  uri = f"gs://{gcs_bucket}/x/src.bin"
  storage.upload_file(str(src), uri)
  dst = tmp_path / "out" / "dst.bin"
  storage.download_file(uri, str(dst))
  assert dst.read_bytes() == src.read_bytes()
  assert sorted(os.listdir(dst.parent)) == ["dst.bin"]


def _put(bucket, name, data):
  storage.write_bytes(f"gs://{bucket}/{name}", data)


def test_stage_in_reuses_and_repairs_cache(gcs_bucket, tmp_path, monkeypatch):
  _put(gcs_bucket, "ds/train-00000-of-00001.tfrecord", b"a" * 1000)
  _put(gcs_bucket, "ds/manifest.json", b"{}")
  _put(gcs_bucket, "ds/sub/deep.txt", b"deep")
  _put(gcs_bucket, "dsx/other.txt", b"not mine")  # Same name prefix, other folder.
  monkeypatch.setenv("DEEPLAB_CACHE_DIR", str(tmp_path / "cache"))
  local = storage.stage_in(f"gs://{gcs_bucket}/ds/")
  assert local == str(tmp_path / "cache" / gcs_bucket / "ds")
  assert sorted(os.listdir(local)) == ["manifest.json", "sub", "train-00000-of-00001.tfrecord"]
  assert open(os.path.join(local, "sub", "deep.txt"), "rb").read() == b"deep"

  downloads = []
  real = gcs.download_verified
  monkeypatch.setattr(gcs, "download_verified",
                      lambda b, path, **kw: (downloads.append(b.name), real(b, path, **kw)))
  assert storage.stage_in(f"gs://{gcs_bucket}/ds") == local
  assert downloads == []  # Everything verified: nothing fetched again.

  shard = os.path.join(local, "train-00000-of-00001.tfrecord")
  with open(shard, "r+b") as f:  # Same size, different bytes: only a checksum sees it.
    f.write(b"b")
  with open(os.path.join(local, "stale.txt"), "w") as f:
    f.write("gone from the bucket")
  storage.stage_in(f"gs://{gcs_bucket}/ds")
  assert downloads == ["ds/train-00000-of-00001.tfrecord"]
  assert open(shard, "rb").read() == b"a" * 1000
  assert not os.path.exists(os.path.join(local, "stale.txt"))


def test_stage_in_checkpoint_prefix(gcs_bucket, tmp_path):
  for name in ("model.ckpt-5.index", "model.ckpt-5.data-00000-of-00001", "model.ckpt-50.index",
               "checkpoint"):
    _put(gcs_bucket, f"run/train/{name}", name.encode())
  local = storage.stage_in(f"gs://{gcs_bucket}/run/train/model.ckpt-5", cache_dir=str(tmp_path))
  assert local == str(tmp_path / gcs_bucket / "run" / "train" / "model.ckpt-5")
  assert open(local + ".index", "rb").read() == b"model.ckpt-5.index"
  assert os.path.exists(local + ".data-00000-of-00001")


def test_stage_in_local_is_identity(tmp_path):
  assert storage.stage_in(str(tmp_path)) == str(tmp_path)


def test_corrupt_download_never_visible(gcs_bucket, tmp_path, monkeypatch):
  _put(gcs_bucket, "c/file.bin", b"x" * 100)
  monkeypatch.setattr(gcs, "matches", lambda path, b: False)  # Every download "corrupt".
  with pytest.raises(gcs.ChecksumError, match="c/file.bin"):
    storage.stage_in(f"gs://{gcs_bucket}/c", cache_dir=str(tmp_path))
  folder = tmp_path / gcs_bucket / "c"
  assert not folder.exists() or os.listdir(folder) == []


def test_sync_dir_uploads_changed_and_commits_last(gcs_bucket, tmp_path, monkeypatch):
  local = tmp_path / "out"
  (local / "sub").mkdir(parents=True)
  for name in ("checkpoint", "manifest.json", "b.tfrecord", "a.tfrecord", "sub/x.txt"):
    (local / name).write_text(name)
  uploads = []
  real = storage.upload_file
  monkeypatch.setattr(storage, "upload_file",
                      lambda src, uri: (uploads.append(uri.rsplit("/out/", 1)[1]), real(src, uri)))
  uri = f"gs://{gcs_bucket}/out"
  storage.sync_dir(str(local), uri, commit_last=("manifest.json", "checkpoint"))
  assert uploads[-2:] == ["manifest.json", "checkpoint"]
  assert sorted(uploads[:-2]) == ["a.tfrecord", "b.tfrecord", "sub/x.txt"]
  uploads.clear()
  (local / "a.tfrecord").write_text("changed")
  storage.sync_dir(str(local), uri, commit_last=("manifest.json",))
  assert uploads == ["a.tfrecord"]
  assert storage.read_text(uri + "/a.tfrecord") == "changed"


def test_output_dir_gcs(gcs_bucket):
  uri = f"gs://{gcs_bucket}/ds"
  with storage.output_dir(uri) as out:
    with open(os.path.join(out, "train-00000-of-00001.tfrecord"), "wb") as f:
      f.write(b"r")
    out.sync(commit=False)
    assert storage.listdir(uri) == ["train-00000-of-00001.tfrecord"]
    storage.write_json(os.path.join(out, "manifest.json"), {"ok": True})
    out.sync(commit=False)
    assert not storage.exists(uri + "/manifest.json")  # Held back until commit.
  assert storage.read_json(uri + "/manifest.json") == {"ok": True}
  assert not os.path.exists(out)  # Staging folder removed.


def test_output_dir_gcs_failure_does_not_commit(gcs_bucket):
  uri = f"gs://{gcs_bucket}/failed"
  with pytest.raises(RuntimeError):
    with storage.output_dir(uri) as out:
      storage.write_json(os.path.join(out, "manifest.json"), {})
      raise RuntimeError("boom")
  assert not storage.exists(uri)


def test_output_dir_local(tmp_path):
  target = str(tmp_path / "o")
  with storage.output_dir(target) as out:
    assert out == target and os.path.isdir(target)
    out.sync()
  storage.sync_dir(target, str(tmp_path / "copy"))


def test_stage_in_pattern_stages_a_subset(gcs_bucket, tmp_path):
  for name in ("train-00000-of-00001.tfrecord", "val-00000-of-00001.tfrecord", "manifest.json"):
    _put(gcs_bucket, f"ds/{name}", name.encode())
  uri = f"gs://{gcs_bucket}/ds"
  local = storage.stage_in(uri, cache_dir=str(tmp_path), pattern="val-*")
  assert os.listdir(local) == ["val-00000-of-00001.tfrecord"]
  storage.stage_in(uri, cache_dir=str(tmp_path), pattern="train-*")
  assert sorted(os.listdir(local)) == ["train-00000-of-00001.tfrecord",
                                       "val-00000-of-00001.tfrecord"]
  with pytest.raises(UserInputError, match="nothing"):
    storage.stage_in(f"gs://{gcs_bucket}/nothing", cache_dir=str(tmp_path), pattern="train-*")
