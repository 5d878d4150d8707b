"""The one exception type that every data-loading problem raises."""


class DataSourceError(ValueError):
    """A CIFAR-10 source is missing, malformed, corrupt or unsafe.

    It subclasses ``ValueError`` so callers that validate user input with
    ``except ValueError`` catch it too. The message always names the offending
    file and, where there is a choice, the valid ones.
    """
