"""x2 single-image super-resolution as an hwnas task (entry point `sr2` in the group ``hwnas.tasks``)."""

from hwnas_superres.task import SuperResolution2x, SuperResolutionOptions

__all__ = ["SuperResolution2x", "SuperResolutionOptions"]
