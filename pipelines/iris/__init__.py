"""Iris without Transform: raw examples and their schema straight to the trainer (TFX's guide)."""
