"""codeq.replication."""
