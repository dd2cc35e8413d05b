"""The audit trail: one function per business event (``events``); the hash chain itself is
pure, in ``gateway.core.auditchain``.
"""
