"""Delivery: how a message leaves the gateway.

Today one transport, the organisation's smarthost (``smarthost``).
"""
