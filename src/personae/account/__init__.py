"""Accounts, API keys, plans, balances and monthly usage."""
