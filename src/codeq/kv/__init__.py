"""codeq.kv."""
