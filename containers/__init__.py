"""Runtime code of each stage: what runs inside the images. Each stage exposes run(...)."""
