"""HF evaluate metric folder; `evaluate.load` copies token_f1.py, so that script stays self-contained."""
