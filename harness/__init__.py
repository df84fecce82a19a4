"""harness: a pluggable benchmark of the adversarial robustness of image classifiers."""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "robustness-harness"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["DISTRIBUTION", "__version__"]
