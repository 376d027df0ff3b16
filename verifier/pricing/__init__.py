"""verifier.pricing.payouts."""
