"""ragloop agents."""
