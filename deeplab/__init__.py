"""DeepLab semantic segmentation on TensorFlow 2.21 (graph mode via tf.compat.v1 + tf-slim).

Never imports airflow. Importing this package does not import TensorFlow: only the
modules that build graphs do (through deeplab.compat).
"""
