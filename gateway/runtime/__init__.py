"""The runtime: the only place that builds the gateway's parts and runs them (serve, the
worker processes, signals)."""
