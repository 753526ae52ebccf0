"""The tiny simulated project the tests write (it lives in the product, for the quick study)."""

from budget.study.tiny import tiny_tables, write_project, write_tiny_project

__all__ = ["tiny_tables", "write_project", "write_tiny_project"]
