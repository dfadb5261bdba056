"""codeq.service."""
