"""salespulse: same-day activity intensity of sales managers from PBX, chat and CRM streams."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("salespulse")
except PackageNotFoundError:  # run from a checkout that was never installed (PYTHONPATH)
    __version__ = "0+unknown"
