"""Which region edge signs for, and the one way S3's answer changes it.

A SigV4 signature names its region, and S3 refuses one for another region than the
bucket's. The first guess is ``EDGE_S3_REGION``, else the AWS chain's (``AWS_REGION``,
``AWS_DEFAULT_REGION``, the profile's ``region``), else ``us-east-1``. Then S3 says:

- the start-up listing's answer carries ``x-amz-bucket-region``: with no
  ``EDGE_S3_REGION``, edge signs for it from then on;
- a ``301 PermanentRedirect`` (or ``307``) names the bucket's region in
  ``x-amz-bucket-region``, a ``400 AuthorizationHeaderMalformed`` in its document's
  ``<Region>``: the request is signed for that region and sent once more (on AWS's own
  endpoints, to that region's host), and every later request is signed for it. A request
  follows one such answer at most; a second is its row's error (``WRONG_REGION``).

Following is what the AWS SDKs do (botocore's S3 region redirector), and it costs one
request per process, the first; a warning says which region to set to save it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from edge.storage.failures import SIGNED_FOR_ANOTHER_REGION, WRONG_REGION, Row

#: The answers that name the bucket's region and mean "signed for another".
REGION_ROWS: tuple[Row, ...] = (WRONG_REGION, SIGNED_FOR_ANOTHER_REGION)
#: What a region's name may be (AWS's ``eu-west-3``, a store's own such as Garage's
#: ``garage``): a header's value becomes part of a host name, so it is never taken unchecked.
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
DEFAULT_REGION = "us-east-1"


def first_region(configured: str | None, session: Any) -> tuple[str, str]:
    """The region to sign for before S3 has said anything, and where it came from."""
    if configured:
        return configured, "EDGE_S3_REGION"
    chain = session.get_config_variable("region")
    if chain:
        return str(chain), "the AWS chain (AWS_REGION, AWS_DEFAULT_REGION or the profile)"
    return DEFAULT_REGION, "none configured: us-east-1"


def region_named(row: Row, region: str) -> str | None:
    """The bucket's region, when an answer of ``row`` names one that can be followed."""
    if row in REGION_ROWS and _REGION.fullmatch(region):
        return region
    return None


def bucket_region(headers: Mapping[str, str]) -> str | None:
    """The region a successful answer says the bucket is in (``x-amz-bucket-region``)."""
    region = headers.get("x-amz-bucket-region", "")
    return region if _REGION.fullmatch(region) else None
