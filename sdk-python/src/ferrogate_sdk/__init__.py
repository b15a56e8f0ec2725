"""Ferrogate plugin-runner SDK for Python (the runner protocol bindings live in ferrogate_sdk._a6)."""
