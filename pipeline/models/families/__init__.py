"""The model families, one file each (see pipeline/models/__init__.py)."""
