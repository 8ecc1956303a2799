"""The process boundary between Airflow and the jobs: `python -m deeplab <command> --flags…`.

Pure Python and tiny, so that the CLI and the operators import the same facts: the commands,
what each exit code means, the dataset formats, the launchers and the safe-name pattern.
"""

from __future__ import annotations


# command -> module with `main(settings)`; the module is imported only when that command runs.
COMMANDS = {
    "build-tfrecords": "deeplab.datasets.build",
    "train": "deeplab.train",
    "evaluate": "deeplab.evaluate",
    "vis": "deeplab.vis",
    "export": "deeplab.export",
    "deploy": "deeplab.deploy",
}

# Exit codes. Anything not listed as non-retryable is transient: the operator retries it.
EXIT_OK = 0
EXIT_TRANSIENT = 1          # an unexpected error (storage down, a crash): retried
EXIT_BAD_INPUT = 2          # bad input or configuration: retrying cannot help
EXIT_NONFINITE_LOSS = 3     # the training loss became NaN/inf: retrying cannot help
EXIT_FOLDER_BUSY = 75       # another live job holds the output folder's lease: retried later
EXIT_INTERRUPTED = 130      # SIGINT (128 + 2): retried
EXIT_TERMINATED = 143       # SIGTERM (128 + 15), after saving a checkpoint: retried, resumes
NON_RETRYABLE = {
    EXIT_BAD_INPUT: "bad input or configuration",
    EXIT_NONFINITE_LOSS: "the training loss became NaN or inf",
}

FORMATS = ("voc", "cityscapes", "ade20k", "folder", "synthetic", "coco", "coco_panoptic", "labelme",
           "cvat_masks", "label_studio")
LAUNCHERS = ("local", "kubernetes")
# What `train` leaves in its train_logdir when it finished (the chief's result): a launcher
# without another way back from the job (a Kubernetes training group) reads it from there.
TRAIN_RESULT_JSON = "train_result.json"
# Names that become folder names or reach a command line (datasets, models, splits).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def exit_meaning(code: int) -> str:
  """Human words for an exit code, as the operators report it."""
  if code == EXIT_OK:
    return "done"
  if code in NON_RETRYABLE:
    return NON_RETRYABLE[code]
  if code == EXIT_TERMINATED:
    return "stopped by SIGTERM after saving; will be retried and resume"
  if code == EXIT_FOLDER_BUSY:
    return "another job is writing the same folder; will be retried"
  if code == EXIT_INTERRUPTED:
    return "interrupted; will be retried"
  return "transient failure, will be retried"
