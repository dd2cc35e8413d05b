"""The review web UI for safeguarding leads: Starlette, server-rendered, no JavaScript.

It is given its parts: ``gateway.runtime`` builds the ``Web`` bundle (``web.context``) and the
app (``web.app.create_app``), and ``web.server`` serves it (inside `gateway serve`, or alone
as `gateway web`). The pages live one module a concern beside them.
"""
