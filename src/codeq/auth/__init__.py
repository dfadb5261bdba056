"""codeq.auth."""
