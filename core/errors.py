"""The one error class hsickit raises for bad input."""


class HsickitError(ValueError):
    """Bad input or state. The message names the offending input and says how to fix it."""
