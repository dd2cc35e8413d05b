"""`make bench`: the gateway against smtp-sink, a bare relay and Postfix (see README.md)."""
