"""Experiments: each is a function from a config to results (arrays and tables), no file I/O."""
