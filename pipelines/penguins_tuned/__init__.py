"""The penguin demo with TFX's Tuner: tune once (KerasTuner), train often with the tuned values."""
