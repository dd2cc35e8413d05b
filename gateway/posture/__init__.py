"""Posture: is a recipient domain a secure destination?

The allowlist files, DNS (MX, MTA-STS TXT, TLS-RPT, TLSA), the MTA-STS policy fetch, the
domain facts gathered from them, and the assessment that ``core.policy`` decides on.
"""
