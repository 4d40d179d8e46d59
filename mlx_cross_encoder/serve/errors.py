"""The one error type of the server: answered as ``{"message": ...}`` (and ``errors``) with its HTTP status."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered as ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str, errors: list | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.errors, self.headers = status, message, errors, headers
