"""The one error of the VEN's exchanges with the VTN."""


class VtnError(RuntimeError):
    """A request to the VTN failed; the message is one line naming the request."""
