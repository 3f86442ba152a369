"""Pushing a blessed model: destinations, versions and their bookkeeping, the model card."""
