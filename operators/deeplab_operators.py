"""The four pipeline stages as operators; each names the flags its command requires."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from operators.base import DeepLabCommandOperator, _is_templated
from operators.launchers.base import ClusterShape


def _positive_int(value: Any, what: str) -> None:
  if not _is_templated(value) and not (isinstance(value, int) and value >= 1):
    raise ValueError(f"{what} must be an integer >= 1, got {value!r}")


class BuildTFRecordsOperator(DeepLabCommandOperator):
  """`python -m deeplab build-tfrecords`: converts a dataset into shards + manifest.json.

  :param format: voc, cityscapes, ade20k, folder or synthetic (templated).
  :param source: the raw dataset, local path or gs:// URI (templated).
  :param output_dir: where the shards and manifest.json go (templated).
  """

  command = "build-tfrecords"
  template_fields = (*DeepLabCommandOperator.template_fields, "format", "source", "output_dir")

  def __init__(self, *, format: str, source: Optional[str], output_dir: str, **kwargs):
    super().__init__(**kwargs)
    self.format = format
    self.source = source
    self.output_dir = output_dir

  def command_flags(self) -> dict:
    return {**super().command_flags(), "format": self.format, "source": self.source or None,
            "output_dir": self.output_dir}

  def num_gpus(self) -> int:
    return 0  # conversion is CPU work


class DeepLabTrainOperator(DeepLabCommandOperator):
  """`python -m deeplab train`: multi-clone training, one clone per GPU.

  :param dataset_dir: the converted dataset (templated).
  :param train_logdir: checkpoints, events, config.json, train_result.json (templated).
  :param num_clones: clones = GPUs requested from Kubernetes, per worker (templated).
  :param num_replicas: worker tasks of the original's distributed mode; > 1 runs the job as a
      group of ps and worker tasks (templated).
  :param num_ps_tasks: parameter-server tasks (>= 1 with replicas) (templated).
  """

  command = "train"
  template_fields = (*DeepLabCommandOperator.template_fields, "dataset_dir", "train_logdir",
                     "num_clones", "num_replicas", "num_ps_tasks")
  ui_color = "#fce8e6"

  def __init__(self, *, dataset_dir: str, train_logdir: str, num_clones: Any = 1,
               num_replicas: Any = 1, num_ps_tasks: Any = 0, **kwargs):
    super().__init__(**kwargs)
    self.dataset_dir = dataset_dir
    self.train_logdir = train_logdir
    self.num_clones = num_clones
    self.num_replicas = num_replicas
    self.num_ps_tasks = num_ps_tasks
    _positive_int(num_clones, "num_clones")
    _positive_int(num_replicas, "num_replicas")
    if not _is_templated(num_ps_tasks) and not (isinstance(num_ps_tasks, int) and
                                                num_ps_tasks >= 0):
      raise ValueError(f"num_ps_tasks must be an integer >= 0, got {num_ps_tasks!r}")

  def command_flags(self) -> dict:
    flags = {**super().command_flags(), "dataset_dir": self.dataset_dir,
             "train_logdir": self.train_logdir, "num_clones": int(self.num_clones)}
    if self.cluster().is_group:  # one process: the flags stay as they were
      flags.update(num_replicas=int(self.num_replicas), num_ps_tasks=int(self.num_ps_tasks))
    return flags

  def cluster(self) -> ClusterShape:
    return ClusterShape(int(self.num_replicas), int(self.num_ps_tasks))

  def launch_options(self) -> dict:
    return {"cluster": self.cluster()} if self.cluster().is_group else {}

  def num_gpus(self) -> int:
    return int(self.num_clones)


class DeepLabEvalOperator(DeepLabCommandOperator):
  """`python -m deeplab evaluate`: one pass over a split; metrics.json and a report.

  :param dataset_dir: the converted dataset (templated).
  :param checkpoint_dir: the training run's logdir; its latest checkpoint is evaluated (templated).
  :param eval_logdir: metrics.json, report.md, PNGs (templated).
  """

  command = "evaluate"
  template_fields = (*DeepLabCommandOperator.template_fields, "dataset_dir", "checkpoint_dir",
                     "eval_logdir")

  def __init__(self, *, dataset_dir: str, checkpoint_dir: str, eval_logdir: str, **kwargs):
    super().__init__(**kwargs)
    self.dataset_dir = dataset_dir
    self.checkpoint_dir = checkpoint_dir
    self.eval_logdir = eval_logdir

  def command_flags(self) -> dict:
    return {**super().command_flags(), "dataset_dir": self.dataset_dir,
            "checkpoint_dir": self.checkpoint_dir, "eval_logdir": self.eval_logdir}


class DeepLabExportOperator(DeepLabCommandOperator):
  """`python -m deeplab export`: frozen graph + SavedModel from the run's config.json.

  :param checkpoint_path: a model.ckpt-N prefix or a training logdir (templated).
  :param export_path: the export folder (templated).
  :param eval_metrics_json: evaluate's metrics.json; the export then uses exactly the input
      size settings that evaluation scored with. Empty: export's own defaults (templated).
  """

  command = "export"
  template_fields = (*DeepLabCommandOperator.template_fields, "checkpoint_path", "export_path",
                     "eval_metrics_json")

  def __init__(self, *, checkpoint_path: str, export_path: str,
               eval_metrics_json: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    self.checkpoint_path = checkpoint_path
    self.export_path = export_path
    self.eval_metrics_json = eval_metrics_json

  def command_flags(self) -> dict:
    metrics = str(self.eval_metrics_json or "").strip()
    return {**super().command_flags(), "checkpoint_path": self.checkpoint_path,
            "export_path": self.export_path,
            # An XCom that rendered to nothing leaves the flag out (export's defaults apply).
            "eval_metrics_json": metrics if metrics not in ("", "None") else None}


class DeepLabDeployOperator(DeepLabCommandOperator):
  """`python -m deeplab deploy`: pushes an export's SavedModel as the next serving version,
  checked by a TF Serving request (the job needs TensorFlow, so it runs through a launcher).

  :param export_path: the export folder (templated).
  :param serving_base_path: TF Serving's model base path, local or gs:// (templated).
  :param model_name: the folder under the base path (templated).
  """

  command = "deploy"
  template_fields = (*DeepLabCommandOperator.template_fields, "export_path",
                     "serving_base_path", "model_name")

  def __init__(self, *, export_path: str, serving_base_path: str, model_name: str, **kwargs):
    super().__init__(**kwargs)
    self.export_path = export_path
    self.serving_base_path = serving_base_path
    self.model_name = model_name

  def command_flags(self) -> dict:
    return {**super().command_flags(), "export_path": self.export_path,
            "serving_base_path": self.serving_base_path, "model_name": self.model_name}

  def num_gpus(self) -> int:
    return 0  # the request check runs a few images on CPU
