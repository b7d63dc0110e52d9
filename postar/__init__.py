"""postar: a self-hosted mail service in one Python package."""

__version__ = "0.1.0"
