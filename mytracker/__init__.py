"""mytracker: Trackio as a first-class MLflow tracking backend.

>>> import mytracker
>>> mytracker.autolog()  # doctest: +SKIP
"""

from mytracker.store import build_store

__all__ = ["build_store"]
__version__ = "0.1.0"
