"""HF evaluate metric folder; `evaluate.load` copies rouge_l.py, so that script stays self-contained."""
