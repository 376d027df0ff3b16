"""The Verifier: the PAC verification protocol engine, its gRPC client and signed reports."""
