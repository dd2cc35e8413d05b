"""A rig of real servers on loopback for end-to-end tests, and for the bench and the demo.

A package of its own at the top of the repository (not shipped in the wheel): the tests import
it through pytest's ``pythonpath``, ``python -m bench`` and ``python -m scripts.demo`` from the
repository root.

knotd serves and DNSSEC-signs the ``test.`` zones, unbound validates them (so the AD bit is real),
nginx serves the MTA-STS policies over HTTPS with certificates from a throw-away CA. One table,
:mod:`rig.zones`, drives all three and also states the verdict the gateway must reach.

Tests get it from the session fixture `rig` (:mod:`rig.plugin`), a :class:`Rig` with
``dns_port`` (unbound), ``https_port`` (nginx), ``ca_file``, ``allowlist_file``, ``workdir``,
``zones`` and ``write_config(path, **section_overrides)``; outside pytest use
:func:`start_rig` / :func:`running_rig`.
"""

from rig.errors import RigError
from rig.rig import Rig, running_rig, start_rig

__all__ = ["Rig", "RigError", "running_rig", "start_rig"]
