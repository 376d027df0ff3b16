"""What both gRPC ends share: TLS credentials from PEM files."""
