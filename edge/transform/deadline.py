"""A transform's time limit (``EDGE_TRANSFORM_TIMEOUT``), enforced inside libvips.

A thread running libvips cannot be killed from outside, and a transform merely abandoned
would go on holding a core and a pool slot. libvips can stop itself: with progress
reporting on, an image being computed reports every few tiles (its ``eval`` signal, in
the thread that computes it), and once its ``kill`` flag is set the computation fails
("killed") at the next report. So the engine watches each image before it is computed
(:meth:`Deadline.watch`); the watcher sets the flag once the deadline has passed or the
pool has given up on the transform (:meth:`Deadline.stop`), and the engine turns the
failure into :class:`edge.errors.TransformTimeout`. A stopped transform frees its worker
within a tile's work of the deadline (tests measure it).

What a library does in one call cannot be stopped midway: an AVIF decoded by libheif
(the whole image at once), the AV1 encoder once the pixels are made, a GIF's palette.
Those are bounded by the pixel limits; the pool answers at the deadline anyway and counts
the worker busy until that call returns.
"""

from __future__ import annotations

import math
import time

import pyvips

from edge.errors import TransformTimeout


class Deadline:
    """When one transform must end: started by the pool as the work is handed to its
    thread, read in that thread by libvips' progress reports, stopped by the pool."""

    def __init__(self, seconds: float | None) -> None:
        #: The time allowed, or None: no limit (then nothing is watched, at no cost).
        self.seconds = seconds
        self._at = math.inf
        self._stopped = False
        #: The watched images: each holds the callback libvips calls, which must live
        #: while the image can be computed, so every one is kept until the transform ends.
        self._watched: list[pyvips.Image] = []

    def start(self) -> None:
        if self.seconds is not None:
            self._at = time.monotonic() + self.seconds

    def stop(self) -> None:
        """Give up on the transform: its next progress report ends it."""
        self._stopped = True

    @property
    def passed(self) -> bool:
        return self._stopped or time.monotonic() >= self._at

    def watch(self, image: pyvips.Image) -> pyvips.Image:
        """``image``, its computation (and that of every image made from it) ended at its
        next progress report once the deadline has passed."""
        if self.seconds is None or any(seen is image for seen in self._watched):
            return image
        image.set_progress(True)
        image.signal_connect("eval", self._report)
        self._watched.append(image)
        return image

    def _report(self, image: pyvips.Image, _progress: object) -> None:
        if self.passed:
            image.set_kill(True)

    def check(self) -> None:
        """Between steps: stop here if the deadline has passed."""
        if self.passed:
            raise self.error()

    def error(self) -> TransformTimeout:
        seconds = self.seconds or 0.0
        return TransformTimeout(
            f"transform ran past EDGE_TRANSFORM_TIMEOUT ({seconds:g} s)",
            retry_after=max(1, math.ceil(seconds)),
        )
