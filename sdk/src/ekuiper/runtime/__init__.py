"""Import paths of the official SDK (``ekuiper.runtime.plugin``, ``.context``), kept for
plugins that import them; new code should import from ``ekuiper``."""

from ekuiper.runtime import context, plugin

__all__ = ["context", "plugin"]
