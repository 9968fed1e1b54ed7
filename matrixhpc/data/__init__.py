"""Dataset readers, output shard writers, the manifest."""
