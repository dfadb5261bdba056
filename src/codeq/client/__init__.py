"""codeq.client."""
