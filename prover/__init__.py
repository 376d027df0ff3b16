"""The Prover: fits attributions, trains challenge subsets, serves the protocol over gRPC."""
