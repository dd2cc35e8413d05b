"""`gateway ...`: the command line, thin over the same models as the web UI."""
