"""The OpenAI-compatible endpoint, mounted at /openai/v1: a character spoken to through
OpenAI's Chat Completions API, so that OpenAI's SDKs and the tools built on them work."""
