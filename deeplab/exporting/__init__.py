"""Export: the model-zoo inference graph, frozen graph and SavedModel, and its self-check."""
