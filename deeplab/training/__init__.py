"""Training: model_deploy clones, losses, learning rates, initialisation, the log folder."""
