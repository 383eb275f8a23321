"""ragloop trainers."""
