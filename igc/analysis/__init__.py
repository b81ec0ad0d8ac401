"""Analysis: connectivity measured from modules, parameter and multiply-add counts."""
