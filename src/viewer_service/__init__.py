"""viewer-service: learners' content progress, assessment scores and collection progress."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("viewer-service")
except PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0.0.0+unknown"
