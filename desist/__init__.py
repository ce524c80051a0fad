"""desist: recidivism and programme-evaluation pipeline."""

__version__ = "0.1.0"
