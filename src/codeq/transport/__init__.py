"""codeq.transport."""
