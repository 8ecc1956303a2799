"""Bounded lost work: DAG runs checkpoint every 10 minutes unless the conf says otherwise."""

from tests.dags.test_conf_validation import check


def test_dag_runs_save_a_checkpoint_every_ten_minutes(dag, tmp_path):
  plan = check(dag, {}, str(tmp_path))
  assert plan["train_config"]["save_interval_secs"] == 600


def test_the_cadence_is_configurable_per_run(dag, tmp_path):
  flags = {**dag.params["extra_train_flags"], "save_interval_secs": 120}
  plan = check(dag, {"extra_train_flags": flags}, str(tmp_path))
  assert plan["train_config"]["save_interval_secs"] == 120
