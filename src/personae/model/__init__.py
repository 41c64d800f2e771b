"""The registered LLM and image models."""
