"""In-guest Application Health agent (issue 4)."""
