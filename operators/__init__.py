"""Airflow operators that run the DeepLab CLI (`python -m deeplab …`) through a launcher.

Never imports TensorFlow: operators are constructed at every DAG parse.
"""

from operators.deeplab_operators import (BuildTFRecordsOperator, DeepLabDeployOperator,
                                         DeepLabEvalOperator, DeepLabExportOperator,
                                         DeepLabTrainOperator)

__all__ = ["BuildTFRecordsOperator", "DeepLabTrainOperator", "DeepLabEvalOperator",
           "DeepLabExportOperator", "DeepLabDeployOperator"]
