"""The one exception the rig raises, so fixtures can turn it into a clear test failure."""


class RigError(RuntimeError):
    """A server of the rig could not be found, configured or started."""
