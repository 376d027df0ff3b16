"""verifier.render."""
