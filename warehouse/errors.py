"""Errors raised by the warehouse layer."""


class WarehouseError(Exception):
    """The warehouse cannot be opened, written or queried as asked."""
