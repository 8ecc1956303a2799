# Source me: a project-local Airflow (SQLite, LocalExecutor) that sees only this repo's DAGs.
#   source scripts/airflow_env.sh
# Overrides: DEEPLAB_AIRFLOW_HOME (default <repo>/.airflow), DEEPLAB_STORAGE_ROOT
# (default <repo>/demo_output/storage; a local folder or gs://bucket/prefix).
_DEEPLAB_REPO="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export AIRFLOW_HOME="${DEEPLAB_AIRFLOW_HOME:-$_DEEPLAB_REPO/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$_DEEPLAB_REPO/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
export DEEPLAB_STORAGE_ROOT="${DEEPLAB_STORAGE_ROOT:-$_DEEPLAB_REPO/demo_output/storage}"
case ":${PYTHONPATH:-}:" in *":$_DEEPLAB_REPO:"*) ;; *) export PYTHONPATH="$_DEEPLAB_REPO${PYTHONPATH:+:$PYTHONPATH}" ;; esac
# `airflow standalone` starts its services as `airflow …` from PATH.
case ":$PATH:" in *":$_DEEPLAB_REPO/.venv/bin:"*) ;; *) export PATH="$_DEEPLAB_REPO/.venv/bin:$PATH" ;; esac
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}"
mkdir -p "$AIRFLOW_HOME"
