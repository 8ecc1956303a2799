"""Pure-Python pieces of the retraining DAG (params, conf resolution, gate, promotion).

Imported by dags/deeplab_retrain.py; the heavy parts (deeplab.storage) only inside tasks.
"""
