"""Serving a run: the FastAPI app behind ``mmkgrec serve`` (:mod:`.app`), the item catalogue it
shows (:mod:`.catalog`), the durable feedback log (:mod:`.feedback`) and the web page
(``static/``). Needs the ``serve`` extra (``pip install 'mmkgrec[serve]'``)."""

from __future__ import annotations

from ..errors import MMKGRecError


def require_serve_extra() -> None:
    """MMKGRecError naming the extra when FastAPI, uvicorn or prometheus-client is missing."""
    missing = []
    for mod in ("fastapi", "uvicorn", "prometheus_client"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise MMKGRecError(f"mmkgrec serve needs {', '.join(missing)}, which are not installed: "
                           "pip install 'mmkgrec[serve]'")
