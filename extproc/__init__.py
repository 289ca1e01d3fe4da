"""Tollgate: the ext_proc service Envoy asks about every request an agent makes."""

__version__ = "0.1.0"
