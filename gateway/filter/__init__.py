"""The filter: the orchestrator of one message.

classify -> posture -> ``core.policy`` decides per recipient -> delivery or hold -> the reply,
which keeps RFC 5321 §6.1: 250 only when every recipient is delivered or durably held.
"""
