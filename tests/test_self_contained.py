"""Everything a maintainer needs is in the repository: no file points to documents outside it."""

import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The team's design notes live outside the repository; docs/ holds what the code relies on.
OUTSIDE = re.compile(r"\.\./shared|reference/\w+\.md|\b(?:DESIGN|STYLE|LAYOUT)\.md"
                     r"|(?<![\w/])(?:deeplab|airflow)\.md\b")


def _tracked_files():
  out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
  if out.returncode != 0:  # not a git checkout (an sdist): every file below the root
    return [p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
  return [ROOT / f for f in out.stdout.split()]


def test_no_file_refers_to_a_document_outside_the_repository():
  offenders = []
  for path in _tracked_files():
    if path == pathlib.Path(__file__) or not path.is_file():
      continue
    text = path.read_text(encoding="utf-8", errors="ignore")
    for match in OUTSIDE.finditer(text):
      offenders.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
  assert not offenders, "move what these need into docs/:\n" + "\n".join(offenders)


def test_docs_links_point_to_files_that_exist():
  for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
    for target in re.findall(r"\]\(((?!https?:|#)[^)#]+)", doc.read_text()):
      assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
