"""The one trainer, negative sampling, checkpoints."""
