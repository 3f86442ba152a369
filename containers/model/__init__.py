"""The model as stages load it: serving signatures and the user's module file."""
