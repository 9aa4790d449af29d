"""The transform engine: source bytes, a transform and an output format in, encoded bytes out.

``types`` is what a transform asks for, ``plan`` turns it into ordered steps over one
image (pure arithmetic, no libvips), ``source`` reads the header and checks the limits
before any pixel is decoded, ``engine`` runs the steps with libvips and encodes, and
``pool`` bounds how many run at once. ``libvips`` sets the library up once per process.
"""

from edge.transform.engine import Rendered, render
from edge.transform.pool import TransformPool
from edge.transform.source import Limits
from edge.transform.types import FORMATS, OutputFormat, Transform, adapt

__all__ = [
    "FORMATS",
    "Limits",
    "OutputFormat",
    "Rendered",
    "Transform",
    "TransformPool",
    "adapt",
    "render",
]
