"""requirements.lock: complete, hashed, and never older than the requirements it is made from."""

import re

from tests.pins import ROOT, lock_pins, lockfile


def _source_pins() -> dict:
  pins = {}
  for name in lockfile.SOURCES:
    for line in (ROOT / name).read_text().splitlines():
      m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#;]+)", line.strip())
      if m:
        pins[m.group(1).lower().replace("_", "-")] = m.group(2)
  return pins


def test_the_lock_is_in_step_with_its_sources():
  # Fails as soon as requirements*.txt changes without `make lock`.
  assert lockfile.staleness() == ""


def test_every_direct_pin_is_locked_at_its_version():
  lock = lock_pins()
  for name, version in _source_pins().items():
    assert lock.get(name) == version, f"{name}=={version} in requirements, {lock.get(name)} locked"


def test_every_locked_package_has_a_hash_and_an_exact_version():
  entries = re.split(r"\n(?=[A-Za-z0-9])", lockfile.LOCK.read_text().split("\n", 3)[3])
  assert len(entries) > 100  # transitive packages too, not only the direct ones
  for entry in entries:
    assert re.match(r"^[A-Za-z0-9_.-]+==\S+", entry), entry[:80]
    assert "--hash=sha256:" in entry, f"no hash for {entry.split()[0]}"


def test_a_changed_source_makes_the_lock_stale(tmp_path, monkeypatch):
  for name in lockfile.SOURCES:
    (tmp_path / name).write_text((ROOT / name).read_text())
  (tmp_path / lockfile.LOCK.name).write_text(lockfile.LOCK.read_text())
  monkeypatch.setattr(lockfile, "ROOT", tmp_path)
  monkeypatch.setattr(lockfile, "LOCK", tmp_path / lockfile.LOCK.name)
  assert lockfile.staleness() == ""
  with open(tmp_path / "requirements-dev.txt", "a") as f:
    f.write("pytest-timeout==2.4.0\n")
  assert "run `make lock`" in lockfile.staleness()


def test_constraints_keep_every_pin_and_marker_and_drop_the_hashes():
  text = lockfile.LOCK.read_text()
  constraints = lockfile.constraints(text)
  assert "--hash" not in constraints and "\\" not in constraints
  assert lockfile.pins(constraints) == lock_pins()
  marked = [l for l in constraints.splitlines() if ";" in l]
  assert marked and all(re.match(r"^\S+==\S+ ; \S", l) for l in marked)
