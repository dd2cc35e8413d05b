"""Direct-delivery tests run against the session rig (signed zones, MTA-STS policies)."""

from rig.plugin import rig

__all__ = ["rig"]
