"""requirements.lock: every package of the two commands, pinned with hashes, made from the
human-edited requirements files.

    python3 scripts/lockfile.py check         exit 1 with the fix when the lock is stale
    python3 scripts/lockfile.py constraints   the lock without hashes, for `pip install -c`
                                              next to a local source tree (pip refuses hashes
                                              for a folder it builds)
    python3 scripts/lockfile.py digest        the sources' digest the lock must record

`make lock` (scripts/lock.sh) regenerates the lock with uv and records the digest of its
sources in its first line, which is how `check` knows the lock is older than its sources.
Standard library only: setup.sh runs it before any venv exists.
"""

import hashlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
# The human-edited sources, in the order the digest reads them.
SOURCES = ("requirements.txt", "requirements-dev.txt")
DIGEST_LINE = "# sources sha256: "
REGENERATE = "make lock"


def sources_digest() -> str:
  h = hashlib.sha256()
  for name in SOURCES:
    h.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
  return h.hexdigest()


def recorded_digest(lock_text: str) -> str:
  first = lock_text.split("\n", 1)[0]
  return first[len(DIGEST_LINE):].strip() if first.startswith(DIGEST_LINE) else ""


def staleness() -> str:
  """Why the lock cannot be installed as it is, or "" when it is in step with its sources."""
  if not LOCK.exists():
    return f"{LOCK.name} is missing: run `{REGENERATE}`"
  if recorded_digest(LOCK.read_text()) != sources_digest():
    return (f"{LOCK.name} is older than {' / '.join(SOURCES)} (a pin was changed without "
            f"regenerating it): run `{REGENERATE}` and commit {LOCK.name}")
  return ""


def pins(lock_text: str) -> dict:
  """{lower-case name: version} of every pin, markers ignored (a name may appear twice, for
  two Python versions: the last one wins, which is fine for the comparisons that use this)."""
  found = {}
  for line in lock_text.splitlines():
    m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", line)
    if m:
      found[m.group(1).lower().replace("_", "-")] = m.group(2)
  return found


def constraints(lock_text: str) -> str:
  """The pins with their markers, without hashes and line continuations."""
  out = []
  for line in lock_text.splitlines():
    stripped = line.strip()
    if not stripped or stripped.startswith(("#", "--hash")):
      continue
    out.append(stripped.rstrip("\\").rstrip())
  return "\n".join(out) + "\n"


def main(argv) -> int:
  command = argv[1] if len(argv) > 1 else "check"
  if command == "digest":
    print(sources_digest())
  elif command == "check":
    problem = staleness()
    if problem:
      print(f"error: {problem}", file=sys.stderr)
      return 1
  elif command == "constraints":
    path = pathlib.Path(argv[2]) if len(argv) > 2 else LOCK
    sys.stdout.write(constraints(path.read_text()))
  else:
    print(__doc__, file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
