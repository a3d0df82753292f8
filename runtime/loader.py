"""Import a generated module from its file on disk (so tracebacks and ``inspect`` work)."""
import hashlib
import importlib.util
import sys


def load_module(path):
    """Import the Python file at ``path`` under a name derived from its path."""
    path = str(path)
    name = "gradc_generated_" + hashlib.sha256(path.encode()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
