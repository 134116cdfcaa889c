"""binfmtctl: correct, explainable and persistent binfmt_misc registration."""

__version__ = "0.1.0"
