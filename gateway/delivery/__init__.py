"""Delivery: how a message leaves the gateway.

``deliver.Delivery`` is the one journal-checked send that the filter, a release and the outbox
all use; it talks to a ``transport.Transport``. Today one transport, the organisation's
smarthost (``smarthost.Smarthost``); direct delivery to the recipients' MX hosts is the next.
"""
