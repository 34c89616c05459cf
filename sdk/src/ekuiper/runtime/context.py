"""Alias of :mod:`ekuiper.context` at the official SDK's import path."""

from ekuiper.context import Context

__all__ = ["Context"]
