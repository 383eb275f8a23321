"""ragloop evaluation."""
