"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class GreitposeError(Exception):
    """A problem with the user's input (file, weights, dataset, option) rather than a bug."""
