"""codeq.wire."""
