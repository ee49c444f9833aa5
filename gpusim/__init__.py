"""gpusim: a discrete-event simulator of GPU-cluster communication.

Inside the package every quantity is an SI float (bytes, seconds, bytes/s, metres); units are parsed once, at the
edge, by :mod:`gpusim.units`. Every error a user can cause is a :class:`gpusim.errors.GpusimError`.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from gpusim.errors import GpusimError

try:
    __version__ = _version("gpusim")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+src"

__all__ = ["GpusimError", "__version__"]
