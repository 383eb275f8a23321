"""HF evaluate metric folder; `evaluate.load` copies bleu.py, so that script stays self-contained."""
