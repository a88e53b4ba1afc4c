"""A module that fails while being imported."""

raise RuntimeError("boom while importing broken_import")
