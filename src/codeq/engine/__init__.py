"""codeq.engine."""
