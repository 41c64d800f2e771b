"""The agents API, mounted at /api/v1."""
