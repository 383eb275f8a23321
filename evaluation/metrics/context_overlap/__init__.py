"""HF evaluate metric folder; `evaluate.load` copies context_overlap.py, so that script stays self-contained."""
