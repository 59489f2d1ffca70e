"""vitalgru: GRU patient monitoring on PhysioNet data.

Importing the package does no I/O, configures no logging and reads no environment
variables; it pulls in neither prefect nor mlflow (a test checks this).
"""

from vitalgru.types import AAMIClass, Annotations, Record, Split

__version__ = "0.2.0"

__all__ = ["AAMIClass", "Annotations", "Record", "Split", "__version__"]
