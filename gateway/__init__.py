"""Safeguarding Mail Gateway: outbound mail leaves only towards provably secure destinations."""

__version__ = "0.1.0"
