"""Pipeline definitions and their module files."""
