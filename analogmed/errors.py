"""User-facing errors.

A :class:`UserError` is bad input (a file, a name, a value) that the user can fix. Its message is
one line naming the thing and how to fix it; the CLI prints it and exits with code 2, without a
traceback. Library callers get an ordinary exception (it subclasses ``ValueError``).
"""


class UserError(ValueError):
    """Bad input from the user: one line naming the thing and the fix."""
