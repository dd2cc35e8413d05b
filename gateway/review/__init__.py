"""Review of held mail: the model shared by the CLI and the web UI, the notices it sends,
and the view of a held message.
"""
