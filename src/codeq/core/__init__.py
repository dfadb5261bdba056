"""codeq.core."""
