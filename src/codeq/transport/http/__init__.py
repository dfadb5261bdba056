"""codeq.transport.http."""
