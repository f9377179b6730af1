"""Training: datasets with augmentation, the training loop, distributed set-up."""
