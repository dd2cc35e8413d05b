"""Configuration: one TOML file plus the environment, parsed once into frozen settings.

``settings`` holds the sections and the checks across keys; ``loader`` has ``load``;
``values`` the types a setting is parsed into (``Seconds``, ``HostPort``, the ``StrEnum``
choices, ``Secret``); ``reading`` turns a TOML value or an environment variable into the
field's type; ``checks`` the value checks. Everything is checked in ``load``, before anything
starts.
"""
