"""The package version: one place, importable by any module without importing the package's public API."""

__version__ = "0.2.0"
