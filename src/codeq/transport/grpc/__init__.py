"""The gRPC producer and worker streams (spec 07): thin servicers over the services."""
