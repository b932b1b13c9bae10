"""Progress bars that suit where the output goes: tqdm's bar on a terminal, and a plain line every
``LANIC_PROGRESS_SECONDS`` (default 30) seconds, plus one at the end, when the output is a log file
or a pipe (a redirected tqdm bar writes thousands of ``\\r`` updates).

Use it as tqdm: ``from lanic_hub.utils.progress import tqdm``.
"""

from __future__ import annotations

import math
import os
import sys
import time

from tqdm.std import tqdm as _tqdm


def interval() -> float:
    """Seconds between plain progress lines (``LANIC_PROGRESS_SECONDS``, default 30)."""
    try:
        return float(os.environ.get("LANIC_PROGRESS_SECONDS", "30"))
    except ValueError:
        return 30.0


def is_terminal(stream=None) -> bool:
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class tqdm(_tqdm):
    """tqdm on a terminal; periodic plain lines elsewhere."""

    def __init__(self, *args, **kwargs) -> None:
        self._plain = not is_terminal(kwargs.get("file"))
        self._plain_last = -math.inf
        self._plain_done = False
        if self._plain:
            kwargs.setdefault("mininterval", 1.0)
        super().__init__(*args, **kwargs)

    def _plain_line(self, force: bool = False) -> None:
        now = time.monotonic()
        done = self.total is not None and self.n >= self.total
        if force or (done and not self._plain_done) or now - self._plain_last >= interval():
            line = self.format_meter(**{**self.format_dict, "ncols": 0}).replace("\r", "").strip()
            self.fp.write(line + "\n")
            self.fp.flush()
            self._plain_last, self._plain_done = now, done

    def display(self, msg=None, pos=None):
        if not self._plain:
            return super().display(msg, pos)
        if msg != "":
            self._plain_line()
        return True

    def clear(self, nolock: bool = False) -> None:
        if not self._plain:
            super().clear(nolock)

    def close(self) -> None:
        if not getattr(self, "_plain", False) or getattr(self, "disable", True):
            return super().close()
        if not self._plain_done:
            self._plain_line(force=True)
        self.disable = True
        self._decr_instances(self)


def quiet_library_bars() -> None:
    """Turn off the progress bars of datasets, huggingface_hub and transformers when stderr is not
    a terminal (lanic-hub's own bars then print plain lines)."""
    if is_terminal():
        return
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()
