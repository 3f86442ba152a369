"""Where data lives: storage, publishing, the artifact layout, examples (manifest, shards, readers) and Beam options."""
