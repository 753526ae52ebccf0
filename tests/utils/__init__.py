"""Builders and contract mixins shared by the test suite."""
