"""The tiny task and models the tests build (they live in the product, for the quick study)."""

from budget.study.tiny import LABELS, build_tiny_bert, build_tiny_chat, make_task

__all__ = ["LABELS", "build_tiny_bert", "build_tiny_chat", "make_task"]
