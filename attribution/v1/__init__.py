"""Generated protobuf and gRPC modules (built from ``protos/`` at install time)."""
