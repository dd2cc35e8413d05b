"""Configuration: one TOML file plus the environment, parsed once into frozen settings.

``settings`` holds the sections and ``load``; ``checks`` the value checks and parsers.
"""
