"""The image request's pipeline and its steps (see :mod:`edge.image.pipeline`)."""
