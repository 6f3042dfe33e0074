"""Writing results: CSV/JSON tables and PNG figures."""
