"""vattr."""
