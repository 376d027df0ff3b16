"""verifier.reports."""
