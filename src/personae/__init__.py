"""Personae: AI characters behind a REST API, self-hosted."""

__version__ = "0.1.0"
