"""vattr.redteam."""
