"""Constructs with keyword-only typed props; stacks compose them and do the grants."""
