"""The versioned push: 1/, 2/, ... complete or absent, only going up, idempotent after a kill.

The pushed folder is a stand-in SavedModel (the push copies bytes and never parses them):
saved_model.pb, variables/ and assets/ files with seeded random content.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from deeplab.errors import UserInputError
from deeplab.serving import push as sp
from deeplab.storage import lease

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
FILES = ("saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001",
         "assets/labels.txt", "fingerprint.pb")


def make_model(folder, seed):
  rng = np.random.RandomState(seed)
  for rel in FILES:
    path = os.path.join(folder, *rel.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
      f.write(rng.bytes(int(rng.randint(10, 3000))))
  return str(folder)


def read_tree(folder):
  """rel path -> bytes of every file under a local folder or gs:// prefix."""
  from deeplab import storage
  if storage.is_gcs(folder):
    bucket, prefix = sp.split_folder(folder)
    from deeplab.storage import gcs
    blobs, _ = gcs.list_blobs(f"gs://{bucket}/{prefix}")
    return {b.name[len(prefix):]: b.download_as_bytes() for b in blobs}
  out = {}
  for here, _, names in os.walk(folder):
    for n in names:
      rel = os.path.relpath(os.path.join(here, n), folder).replace(os.sep, "/")
      with open(os.path.join(here, n), "rb") as f:
        out[rel] = f.read()
  return out


def integer_folders(model_dir):
  from deeplab import storage
  if not storage.exists(model_dir):
    return []
  return sorted(int(n) for n in storage.listdir(model_dir) if n.isdigit())


def assert_version_is(model_dir, number, source):
  got = read_tree(f"{model_dir}/{number}")
  record = json.loads(got.pop(sp.PUSH_RECORD))
  assert record["version"] == number
  assert got == read_tree(source)


@pytest.fixture(params=["local", "gcs"])
def model_dir(request, tmp_path):
  if request.param == "local":
    return str(tmp_path / "serving" / "deeplab")
  bucket = request.getfixturevalue("gcs_bucket")
  return f"gs://{bucket}/serving/deeplab"


def test_first_push_is_1_the_second_2_and_1_is_kept(model_dir, tmp_path):
  a, b = make_model(tmp_path / "a", 1), make_model(tmp_path / "b", 2)
  first = sp.push(a, model_dir, "run-a")
  second = sp.push(b, model_dir, "run-b")
  assert (first.version, first.previous, second.version, second.previous) == (1, None, 2, 1)
  assert integer_folders(model_dir) == [1, 2]
  assert_version_is(model_dir, 1, a)
  assert_version_is(model_dir, 2, b)
  assert sp.newest(model_dir) == 2
  # A retry of an earlier push finds its version: nothing new, nothing rewritten.
  again = sp.push(b, model_dir, "run-b")
  assert (again.version, again.reused) == (2, True)
  assert integer_folders(model_dir) == [1, 2]


def test_a_folder_without_saved_model_pb_is_refused(tmp_path):
  (tmp_path / "src").mkdir()
  (tmp_path / "src" / "other.txt").write_text("x")
  with pytest.raises(UserInputError, match="saved_model.pb"):
    sp.push(str(tmp_path / "src"), str(tmp_path / "m"), "p")
  assert integer_folders(str(tmp_path / "m")) == []


def test_a_failed_check_leaves_the_previous_version_newest(model_dir, tmp_path):
  a, b = make_model(tmp_path / "a", 1), make_model(tmp_path / "b", 2)
  sp.push(a, model_dir, "run-a")
  seen = []

  def wrong(folder):
    seen.append(read_tree(folder))
    raise UserInputError("predictions differ")

  with pytest.raises(UserInputError, match="predictions differ"):
    sp.push(b, model_dir, "run-b", check=wrong)
  # The check saw exactly the bytes of the push, and nothing of them became a version.
  pushed = dict(seen[0])
  assert json.loads(pushed.pop(sp.PUSH_RECORD))["push_id"] == "run-b"
  assert pushed == read_tree(b)
  assert integer_folders(model_dir) == [1] and sp.newest(model_dir) == 1
  assert_version_is(model_dir, 1, a)
  assert not [n for n in read_tree(model_dir) if n.startswith(sp.STAGING_PREFIX)]


def test_retention_keeps_k_and_never_the_served_or_rollback_target(tmp_path):
  model_dir = str(tmp_path / "m")
  src = make_model(tmp_path / "a", 1)
  for i in range(1, 5):
    sp.push(src, model_dir, f"p{i}", keep=0)
  assert integer_folders(model_dir) == [1, 2, 3, 4]
  # keep=1 still keeps the rollback target (the version served before this push).
  result = sp.push(src, model_dir, "p5", keep=1, protect=[1])
  assert integer_folders(model_dir) == [1, 4, 5]
  assert sorted(result.removed) == [2, 3]
  result = sp.push(src, model_dir, "p6", keep=2)
  assert integer_folders(model_dir) == [5, 6] and sorted(result.removed) == [1, 4]
  with pytest.raises(UserInputError, match="keep"):
    sp.push(src, model_dir, "p7", keep=-1)


def test_an_unfinished_gcs_version_is_not_served_and_is_finished_by_its_retry(gcs_bucket,
                                                                           tmp_path):
  model_dir = f"gs://{gcs_bucket}/serving/m"
  src = make_model(tmp_path / "a", 1)
  sp.push(src, model_dir, "run-a")
  # What a push killed before its last object leaves: everything but saved_model.pb.
  from deeplab import storage
  storage.write_json(f"{model_dir}/2/{sp.PUSH_RECORD}", {"push_id": "run-b", "version": 2})
  storage.upload_file(os.path.join(src, "variables", "variables.index"),
                      f"{model_dir}/2/variables/variables.index")
  assert sp.newest(model_dir) == 1
  assert sp.push(src, model_dir, "run-b").version == 2
  assert_version_is(model_dir, 2, src)
  # Another push's leftover is removed and its number never reused.
  storage.write_json(f"{model_dir}/3/{sp.PUSH_RECORD}", {"push_id": "dead", "version": 3})
  assert sp.push(src, model_dir, "run-c").version == 4
  assert integer_folders(model_dir) == [1, 2, 4]


_CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from deeplab.serving import push as sp
    source, model_dir, push_id, kill_after, delay = sys.argv[1:6]
    kill_after, delay = int(kill_after), float(delay)
    real_put, real_retain, count = sp._put, sp.retain, [0]

    def put(src, dst):
      if count[0] == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
      time.sleep(delay)
      real_put(src, dst)
      count[0] += 1

    def retain(*args, **kwargs):  # after the version is complete
      if count[0] == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
      return real_retain(*args, **kwargs)

    sp._put, sp.retain = put, retain
    try:
      print(sp.push(source, model_dir, push_id).version)
    except Exception as e:
      print(type(e).__name__, e, file=sys.stderr)
      sys.exit(75)
    """)


def _child(source, model_dir, push_id, kill_after=-1, delay=0.0, wait=None):
  env = dict(os.environ, PYTHONPATH=REPO)
  if wait is not None:
    env["DEEPLAB_LEASE_WAIT_SECONDS"] = str(wait)
  return subprocess.Popen([sys.executable, "-c", _CHILD, source, model_dir, push_id,
                           str(kill_after), str(delay)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("model_dir", ["local", pytest.param("gcs", marks=pytest.mark.slow)],
                         indirect=True)
def test_sigkill_at_any_point_then_the_retry_ends_with_exactly_one_new_version(model_dir,
                                                                            tmp_path):
  src = make_model(tmp_path / "a", 1)
  sp.push(src, model_dir, "first")
  # Before each file copy (on gs:// the push record is already up), then after publishing.
  for point, kill_after in enumerate(range(len(FILES) + 1)):
    push_id = f"push-{point}"
    child = _child(src, model_dir, push_id, kill_after)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    before = integer_folders(model_dir)
    for number in before:  # a folder a server could load is a whole version
      if sp.MODEL_FILE in read_tree(f"{model_dir}/{number}"):
        assert_version_is(model_dir, number, src)
      else:
        assert model_dir.startswith("gs://"), f"local folder {number} lacks saved_model.pb"
    result = sp.push(src, model_dir, push_id)
    complete = [v for v in sp.list_versions(model_dir).values() if v.complete]
    assert [v.number for v in complete if v.push_id == push_id] == [result.version]
    assert result.version == max(v.number for v in complete)
    assert_version_is(model_dir, result.version, src)
    assert not [n for n in read_tree(model_dir) if n.startswith(sp.STAGING_PREFIX)]


@pytest.mark.slow
def test_two_pushes_at_once_never_write_the_same_version(model_dir, tmp_path):
  a, b = make_model(tmp_path / "a", 1), make_model(tmp_path / "b", 2)
  delay = 0.3 if model_dir.startswith("gs://") else 0.05  # copies slow enough to overlap
  first = _child(a, model_dir, "run-a", delay=delay)
  if model_dir.startswith("gs://"):
    # gcp-storage-emulator ignores ifGenerationMatch, so two leases created in the same instant
    # both succeed there (GCS refuses the second). Start the second push once the first holds
    # the lease: it must wait, then number its version after the first.
    from deeplab import storage
    while first.poll() is None and not storage.exists(f"{model_dir}/{lease.LEASE_NAME}"):
      pass
  children = [first, _child(b, model_dir, "run-b", delay=delay)]
  outs = [c.communicate(timeout=120)[0] for c in children]
  assert [c.returncode for c in children] == [0, 0]
  assert sorted(int(o) for o in outs) == [1, 2]
  versions = sp.list_versions(model_dir)
  assert sorted(versions) == [1, 2] and all(v.complete for v in versions.values())
  for number, source in ((int(outs[0]), a), (int(outs[1]), b)):
    assert_version_is(model_dir, number, source)


def test_a_push_that_cannot_get_the_lease_fails_as_transient(tmp_path):
  model_dir = str(tmp_path / "m")
  src = make_model(tmp_path / "a", 1)
  os.makedirs(model_dir)
  with lease.hold(model_dir, "another push"):
    with pytest.raises(lease.FolderBusyError, match="another push"):
      sp.push(src, model_dir, "run-a", wait_seconds=0)
  assert integer_folders(model_dir) == []
