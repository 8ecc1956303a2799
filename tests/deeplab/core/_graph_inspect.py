"""Graph inspection shared by the backbone tests."""

from deeplab.compat import tf


def variable_shapes(graph) -> dict:
  """{variable op name: shape} of every global variable in `graph`."""
  with graph.as_default():
    return {v.op.name: v.shape.as_list() for v in tf.global_variables()}


def dilation_rate(graph, layer_scope: str) -> int:
  """Atrous rate of the conv under `layer_scope`: the SpaceToBatchND block shape, else 1."""
  for op in graph.get_operations():
    if op.name.startswith(layer_scope + "/") and op.type == "SpaceToBatchND":
      block_shape = tf.make_ndarray(op.inputs[1].op.get_attr("value"))
      assert block_shape[0] == block_shape[1]
      return int(block_shape[0])
  return 1
