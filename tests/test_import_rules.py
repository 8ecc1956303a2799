"""The one-way import rule (docs/architecture.md): deeplab/ never imports airflow; dags/ and operators/
never import tensorflow at module level. Checked statically on every file."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _module_level_imports(path: pathlib.Path, top_level_only: bool):
  tree = ast.parse(path.read_text(), filename=str(path))
  nodes = tree.body if top_level_only else list(ast.walk(tree))
  for node in nodes:
    if isinstance(node, ast.Import):
      yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module


def _files(folder):
  return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _files("deeplab"), ids=lambda p: str(p.relative_to(ROOT)))
def test_deeplab_never_imports_airflow(path):
  bad = [m for m in _module_level_imports(path, top_level_only=False)
         if m.split(".")[0] == "airflow"]
  assert not bad, f"{path} imports {bad}: deeplab/ must stay free of Airflow"


@pytest.mark.parametrize("path", _files("dags") + _files("operators"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_dags_and_operators_never_import_tensorflow_at_module_level(path):
  heavy = {"tensorflow", "tf_slim", "tf_keras", "keras"}
  bad = [m for m in _module_level_imports(path, top_level_only=True)
         if m.split(".")[0] in heavy or m in ("deeplab.compat",)]
  assert not bad, f"{path} imports {bad} at module level"
