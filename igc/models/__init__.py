"""Model definitions, the model registry and the papers' reported numbers."""
