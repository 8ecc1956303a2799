"""The C helpers build once per source version, load with ctypes, and degrade to a warning."""

import logging
import os
import subprocess
import sys

import pytest

from deeplab import native

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))


def _fresh_state(monkeypatch):
  monkeypatch.setattr(native, "_state", {"tried": False, "lib": None})


def test_builds_into_the_native_dir_once(tmp_path, monkeypatch):
  monkeypatch.setenv("DEEPLAB_NATIVE_DIR", str(tmp_path))
  path = native.build()
  assert os.path.dirname(path) == str(tmp_path) and os.path.isfile(path)
  mtime = os.path.getmtime(path)
  assert native.build() == path and os.path.getmtime(path) == mtime  # no rebuild
  assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []
  _fresh_state(monkeypatch)
  assert native.library().deeplab_unfilter_8bit is not None


def test_the_library_name_follows_the_sources(tmp_path, monkeypatch):
  monkeypatch.setenv("DEEPLAB_NATIVE_DIR", str(tmp_path))
  before = native.library_path()
  src = tmp_path / "png_rows.c"
  src.write_text(open(native._sources()[0]).read() + "\n/* edited */\n")
  monkeypatch.setattr(native, "_sources", lambda: [str(src)])
  assert native.library_path() != before


def test_without_a_compiler_library_is_none_with_one_warning(tmp_path, monkeypatch, caplog):
  monkeypatch.setenv("DEEPLAB_NATIVE_DIR", str(tmp_path))
  monkeypatch.setenv("CC", "no-such-compiler")
  monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang either
  _fresh_state(monkeypatch)
  with caplog.at_level(logging.WARNING, logger="deeplab.native"):
    assert native.library() is None
    assert native.library() is None
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1
  assert "no C compiler found" in warnings[0] and "Pillow" in warnings[0]


def test_a_failing_compile_says_why(tmp_path, monkeypatch):
  bad = tmp_path / "bad.c"
  bad.write_text("this is not C;\n")
  monkeypatch.setattr(native, "_sources", lambda: [str(bad)])
  with pytest.raises(native.NativeUnavailable, match="failed"):
    native.build(str(tmp_path / "lib.so"))
  assert os.listdir(tmp_path) == ["bad.c"]  # no half-written library left behind


def test_switched_off_by_environment(monkeypatch):
  monkeypatch.setenv("DEEPLAB_NATIVE", "0")
  _fresh_state(monkeypatch)
  assert native.library() is None


def test_command_line_prints_the_path(tmp_path):
  env = dict(os.environ, DEEPLAB_NATIVE_DIR=str(tmp_path))
  proc = subprocess.run([sys.executable, "-m", "deeplab.native"], cwd=REPO, env=env,
                        capture_output=True, text=True, check=True)
  assert proc.stdout.strip().startswith(str(tmp_path)) and os.path.isfile(proc.stdout.strip())
