"""ragloop indexing."""
