"""The SMTP face (aiosmtpd): admission, limits, DSN parameters, and the one reply type.

Stage 1 of a message's path: ``smtp`` -> filter -> posture -> decide -> delivery or hold.
"""
