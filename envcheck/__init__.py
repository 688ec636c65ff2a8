"""envcheck: run a golden TensorFlow model in every target environment and flag drift."""
__version__ = "0.1.0"
