"""Conversations, messages and the chat turn that generates a character's answer."""
