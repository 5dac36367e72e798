"""The one exception type for bad input. The CLI prints it as a single line and exits 2."""


class PocketBertError(ValueError):
    """Bad user input or environment: the message names the problem and the fix, in one line."""
