"""The pins of requirements.txt and requirements.lock, for tests that keep other files in step."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import lockfile  # noqa: E402  (scripts/ is not a package: setup.sh runs it before any venv)


def requirement_pins() -> dict:
  """{lower-case name: version} of every `name==version` line of requirements.txt."""
  pins = {}
  for line in (ROOT / "requirements.txt").read_text().splitlines():
    m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
    if m:
      pins[m.group(1).lower()] = m.group(2)
  return pins


def dockerfile_pins(text: str) -> dict:
  """{lower-case name: version} of every `name==version` a Dockerfile installs."""
  return {n.lower(): v for n, v in re.findall(r"\s([A-Za-z0-9_.-]+)==([0-9][^\s\\\"]*)", text)}


def lock_pins() -> dict:
  """{lower-case name: version} of every package of requirements.lock."""
  return lockfile.pins(lockfile.LOCK.read_text())


def lock_installs(dockerfile: str) -> list:
  """The names a Dockerfile's `pip install -c <the lock's constraints>` asks for, in order."""
  text = re.sub(r"\\\n", " ", dockerfile)
  m = re.search(r"pip install [^&]*?-c /tmp/lock/constraints\.txt\s+([^&]+)", text)
  assert m, "no `pip install -c /tmp/lock/constraints.txt ...` in the Dockerfile"
  return [w for w in m.group(1).split() if not w.startswith("/")]
