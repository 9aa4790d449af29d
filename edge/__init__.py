"""edge: the image delivery edge.

Public images for anyone, private images only for a URL signed under the v1
contract (``docs/signed-urls.md``), bytes streamed from a local folder
or an S3-compatible bucket.
"""

__version__ = "0.1.0"
