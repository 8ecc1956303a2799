"""Atomic, idempotent and deterministic conversion; the CLI's exit codes."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from deeplab.datasets import build, fingerprint
from deeplab.errors import UserInputError
from tests.deeplab.datasets.test_build_trees import (convert, label_array, make_folder,
                                                     make_voc, manifest, save)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _visible(out):
  return sorted(f for f in os.listdir(out) if not f.startswith("."))


def _shards(out):
  return {f: open(os.path.join(out, f), "rb").read() for f in _visible(out)
          if f.endswith(".tfrecord")}


def test_failure_leaves_nothing_visible_even_after_good_shards(tmp_path):
  root = make_voc(str(tmp_path / "src"))
  # The last val example is bad: train shards were already written when it is found.
  save(os.path.join(root, "VOC2012", "SegmentationClassRaw", "2008_000002.png"),
       label_array(0, 21) + 30)
  out = str(tmp_path / "out")
  for workers in (0, 2):
    with pytest.raises(UserInputError, match="2008_000002.png"):
      convert("voc", root, out, workers=workers)
    assert os.listdir(out) == []  # not even the staging folder


def test_killed_conversion_leaves_no_manifest(tmp_path):
  root = make_voc(str(tmp_path / "src"))
  out = str(tmp_path / "out")
  script = textwrap.dedent(f"""
      import os, signal
      from deeplab.datasets import build, sharded_writer
      from deeplab.datasets.converters.base import ConvertOptions
      real, seen = sharded_writer.example_pieces, []
      def encode_then_die(ex):
        seen.append(ex)
        if len(seen) == 4:  # mid-way: some shards written, one open
          os.kill(os.getpid(), signal.SIGKILL)
        return real(ex)
      sharded_writer.example_pieces = encode_then_die
      build.build_tfrecords(ConvertOptions(format="voc", source={root!r}, num_shards=1),
                            {out!r}, 0)
      """)
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
  assert proc.returncode == -9, proc.stderr.decode()
  assert _visible(out) == []  # only the hidden staging folder may remain
  res = convert("voc", root, out)  # the next run cleans up and completes
  assert sorted(os.listdir(out)) == _visible(out) and "manifest.json" in os.listdir(out)
  assert res["splits"] == {"train": 3, "val": 2}


def test_deterministic_across_runs_and_worker_counts(tmp_path):
  root = make_voc(str(tmp_path / "src"))
  r1 = convert("voc", root, str(tmp_path / "a"), workers=0)
  r2 = convert("voc", root, str(tmp_path / "b"), workers=2)
  assert r1["fingerprint"] == r2["fingerprint"]
  a, b = _shards(str(tmp_path / "a")), _shards(str(tmp_path / "b"))
  assert a == b and len(a) == 8
  ma, mb = manifest(str(tmp_path / "a")), manifest(str(tmp_path / "b"))
  assert ma["splits"] == mb["splits"]
  assert fingerprint.compute_fingerprint("voc", root, {"num_workers": 7}) == r1["fingerprint"]


def test_rerun_is_a_noop(tmp_path, caplog):
  root = make_voc(str(tmp_path / "src"))
  out = str(tmp_path / "out")
  first = convert("voc", root, out)
  stamp = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in os.listdir(out)}
  caplog.set_level("INFO")
  again = convert("voc", root, out)
  assert again["noop"] and not first["noop"] and again["fingerprint"] == first["fingerprint"]
  assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in os.listdir(out)} == stamp
  assert "nothing to do" in caplog.text


def test_incomplete_output_is_rebuilt(tmp_path):
  root = make_voc(str(tmp_path / "src"))
  out = str(tmp_path / "out")
  convert("voc", root, out)
  os.remove(os.path.join(out, "val-00001-of-00004.tfrecord"))
  assert not convert("voc", root, out)["noop"]
  assert len(_shards(out)) == 8


def test_different_dataset_needs_overwrite(tmp_path):
  root = make_voc(str(tmp_path / "src"))
  out = str(tmp_path / "out")
  convert("voc", root, out)
  before = _shards(out)
  with pytest.raises(UserInputError, match="--overwrite"):
    convert("voc", root, out, num_shards=2)
  assert _shards(out) == before
  res = build.build_tfrecords(
      build.ConvertOptions(format="voc", source=root, num_shards=2), out, 0, overwrite=True)
  assert sorted(_shards(out)) == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
                                  "val-00000-of-00002.tfrecord", "val-00001-of-00002.tfrecord"]
  assert manifest(out)["fingerprint"] == res["fingerprint"]


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "deeplab", "build-tfrecords", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_cli_result_json_and_exit_codes(tmp_path):
  root = make_folder(str(tmp_path / "f"))
  out, result = str(tmp_path / "out"), str(tmp_path / "result.json")
  proc = _cli("--format=folder", f"--source={root}", f"--output_dir={out}", "--num_workers=0",
              f"--result_json={result}")
  assert proc.returncode == 0, proc.stderr
  res = json.load(open(result))
  assert res["splits"] == {"train": 4, "val": 2} and res["noop"] is False
  assert res["fingerprint"] == manifest(out)["fingerprint"] and res["skipped"] == 0
  bad = _cli("--format=folder", f"--source={root}", f"--output_dir={out}", "--num_classes=2")
  assert bad.returncode == 2 and "--overwrite" in bad.stderr
  bad = _cli("--format=folder", f"--source={tmp_path / 'nope'}", f"--output_dir={out}2")
  assert bad.returncode == 2 and "nope" in bad.stderr


def test_conversion_never_imports_tensorflow(tmp_path):
  # Workers fork from this process and the Airflow layer calls compute_fingerprint: both must
  # stay free of TensorFlow's import time and memory.
  root = make_folder(str(tmp_path / "f"))
  script = textwrap.dedent(f"""
      import sys
      from deeplab.datasets import build, fingerprint
      from deeplab.datasets.converters.base import ConvertOptions
      fingerprint.compute_fingerprint("folder", {root!r}, {{}})
      build.build_tfrecords(ConvertOptions(format="folder", source={root!r}),
                            {str(tmp_path / "out")!r}, 2)
      assert "tensorflow" not in sys.modules, "tensorflow was imported"
      """)
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
