"""Transform: where the URL contract's image transforms will run (resize, format, presets).

Empty for now: the parse step leaves ``ImageRequest.transform`` as None, and the
pipeline skips this step for such requests, so an object asked for as stored
is served byte for byte, with no decoding. A transform takes what the read step
found (the source object's bytes) and returns what to answer instead.
"""

from __future__ import annotations

from edge.image.read import Found
from edge.image.request import ImageRequest


async def transform(request: ImageRequest, found: Found) -> Found:
    """The found object, transformed as ``request.transform`` says (nothing to do yet)."""
    return found
