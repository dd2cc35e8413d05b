"""Accounts: reviewers and administrators, their passwords, and the sign-in throttle."""
