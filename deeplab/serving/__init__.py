"""Getting a promoted model to a model server: the versioned push and the request check.

`push` (pure Python, no TensorFlow) writes a SavedModel as the next integer version of
TF Serving's layout `<base_path>/<model_name>/<version>/`; `request_check` (TensorFlow) sends
the pushed version the REST body a client sends and compares its answer with evaluation's.
The command `python -m deeplab deploy` (deeplab/deploy.py) runs both.
"""
