"""codeq.observability."""
