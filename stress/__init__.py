"""Hostile inputs, load, SIGTERM and schema fuzzing against a real server (`python -m stress`)."""
