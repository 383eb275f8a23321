"""ragloop models."""
