"""Errors, settings, clocks and transactions: what every layer may use."""
