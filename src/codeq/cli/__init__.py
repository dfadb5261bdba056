"""codeq.cli."""
