"""The one trainer: seeded epochs, validation, early stopping, checkpoints and resume."""
