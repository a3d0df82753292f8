"""gradc's runtime: loads generated modules and trains them.  Never imports the compiler."""
from runtime.errors import GradcError  # noqa: F401
from runtime.program import KernelInfo, Program  # noqa: F401
from runtime.train import History, train  # noqa: F401
