"""Exceptions raised by mlx_cross_encoder. All derive from ValueError so callers can catch broadly."""


class ModelLoadError(ValueError):
    """A model directory or Hub id cannot be loaded (missing files, corrupt weights, bad config)."""


class UnsupportedArchitectureError(ModelLoadError):
    """The checkpoint's ``architectures`` names a model this package does not implement."""
