"""vattr.commands."""
