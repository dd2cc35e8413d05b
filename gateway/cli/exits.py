"""The exit statuses of every `gateway` command, in one place."""

EXIT_OK = 0  # done; for `gateway check`, every domain is a secure destination
EXIT_FINDING = 1  # a finding (an insecure domain, a bad allowlist entry), or could not start
EXIT_USAGE = 2  # a usage or configuration error
