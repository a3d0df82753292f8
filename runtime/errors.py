"""The one error type gradc raises for bad input.

A ``GradcError`` carries a one-line message and, when the problem comes from a
line of the user's model file, that location.  The CLI prints
``gradc: error: FILE:LINE: message`` and exits with status 2.

>>> str(GradcError("shape mismatch", where="model.py:3"))
'model.py:3: shape mismatch'
"""


class GradcError(ValueError):
    """Bad input: a one-line message, optionally located at ``file:line``."""

    def __init__(self, message, where=None):
        self.message = " ".join(str(message).split())
        self.where = where
        super().__init__(self.message)

    def __str__(self):
        return f"{self.where}: {self.message}" if self.where else self.message


class DataError(GradcError):
    """Training or evaluation data that does not fit the model."""


class CheckpointError(GradcError):
    """A checkpoint that cannot be read or does not belong to the model."""


class TrainingError(GradcError):
    """Training that cannot continue (for example a loss that became NaN)."""
