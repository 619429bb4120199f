"""The ARM-shaped REST API: TLS, tokens, routes, long-running operations."""
