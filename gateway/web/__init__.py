"""The review web UI for safeguarding leads: Starlette, server-rendered, no JavaScript.

``gateway.web.server`` serves it (inside `gateway serve`, or alone as `gateway web`);
``gateway.web.app.create_app`` builds it; the pages live one module a concern beside it.
"""
