"""gst-python plugin file: makes ``edgeoptbgremove`` loadable by ``gst-launch-1.0``.

gst-python's plugin loader imports every ``python/*.py`` under each GST_PLUGIN_PATH folder and
registers the factories named in ``__gstelementfactory__``. The element itself lives in
``edgeopt.apps.background.gst``; this file only points at it. When ``edgeopt`` is not
importable (a source checkout run without PYTHONPATH), the ``src`` folder this file sits in
is added to ``sys.path`` first.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import edgeopt  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[5]))

from gi.repository import Gst  # type: ignore[import-untyped]

from edgeopt.apps.background.gst import ELEMENT, EdgeoptBgRemove, preload

preload()

__gstelementfactory__ = (ELEMENT, Gst.Rank.NONE, EdgeoptBgRemove)
