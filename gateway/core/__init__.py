"""The pure decision core.

Standard library only (plus ``idna``, a pure table-driven codec): no sockets, no asyncio, no
clock reads, no disk. Adapters gather facts; this package parses them and decides.
A test enforces the import rule (tests/core/test_import_rule.py).
"""
