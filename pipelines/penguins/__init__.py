"""The penguin demo: raw CSV -> transform -> train -> evaluate -> push, on kfp.local or a cluster."""
