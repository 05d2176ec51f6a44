"""Cairn: pipelines of ops with non-destructive re-execution, in-process or on Kubernetes."""

__version__ = "0.1.0"
