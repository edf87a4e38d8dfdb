"""Benchmarks: the service against the raw SavedModel and a naive FastAPI server (`python -m bench`)."""
