"""gRPC producer and worker stream tests."""
