"""The characters API, mounted at /v1."""
