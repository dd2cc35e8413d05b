"""Test doubles that speak the real protocols on loopback: a DNS server, a throw-away CA and a
minimal HTTPS server. In-process and dependency-free beyond dnspython and cryptography."""
