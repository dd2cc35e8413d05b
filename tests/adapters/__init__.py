"""Adapter tests: the gateway's DNS, HTTPS and cache adapters against real protocol servers
running in-process on loopback (``tests/support``)."""
