"""DAG tests parse this repo's dags/ folder with a throwaway AIRFLOW_HOME."""

import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
if str(DAGS) not in sys.path:
  sys.path.insert(0, str(DAGS))


@pytest.fixture(scope="session")
def dagbag(tmp_path_factory):
  os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
  from airflow.dag_processing.dagbag import DagBag  # 3.3: no include_examples argument
  return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="session")
def dag(dagbag):
  return dagbag.dags["deeplab_retrain"]
