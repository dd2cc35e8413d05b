"""The rig's own tests: they need only the `rig` fixture."""

from rig.plugin import rig

__all__ = ["rig"]
