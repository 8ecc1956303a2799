"""Named sets of overrides on top of the original defaults.

DEMO is the embedded default of the retraining DAG (and `make demo`): the synthetic shapes
dataset on two CPU clones, trained from scratch in about a minute. Every other setting keeps
the original DeepLab default declared in ModelConfig / TrainConfig.
"""

DEMO = {
    "model_variant": "mobilenet_v2",
    # DeepLabv3+: the decoder at output stride 4 recovers the shapes' edges at 64 px.
    "decoder_output_stride": (4,),
    "num_clones": 2,
    "train_batch_size": 8,
    "training_number_of_steps": 500,
    # From scratch, the original 0.0001 barely moves in 500 steps.
    "base_learning_rate": 0.05,
    "train_crop_size": (65, 65),
    # The original's slow batch-norm decays leave the moving averages near their initial values
    # after a short run, and the image-pooling branch's batch norm over 4 images per clone does
    # not carry to evaluation: either makes evaluation predict background only (mIoU 0.17).
    "backbone_batch_norm_decay": 0.9,
    "batch_norm_decay": 0.99,
    "add_image_level_feature": False,
    # Milder scale augmentation suits 64 px images.
    "min_scale_factor": 0.75,
    "max_scale_factor": 1.25,
    # Ten progress lines per run instead of fifty.
    "log_steps": 50,
}
