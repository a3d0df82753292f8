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


class data_errors:
    """A context in which the generated module's own failures on a batch become one-line
    ``DataError``s: an integer input holding an index outside its axis (an embedding's
    token id past the vocabulary), and a size formula dividing by zero (a mean over an empty
    batch; batch norm's unbiased variance of a minibatch with one value per channel, which
    PyTorch refuses too)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is IndexError:
            raise DataError(f"an integer input holds an index outside its axis ({error})") \
                from None
        if kind is ZeroDivisionError:
            raise DataError("a size in the model divides by zero: the batch is empty, or batch "
                            "norm got one value per channel (it needs more than one value per "
                            "channel in every minibatch, the last one too: choose a batch size "
                            "that leaves no minibatch of one row)") from None
        return False
