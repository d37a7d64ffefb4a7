"""mmkgrec: multimodal, knowledge-graph-enhanced recommendation.

    import mmkgrec
    run = mmkgrec.train("LightGCN", "ml-100k", out="runs/lgcn", overrides={"epochs": 50})
    run = mmkgrec.load("runs/lgcn")
    run.recommend("196", k=10)
    best = mmkgrec.tune("BPR", "ml-100k", {"learning_rate": [0.001, 0.005]}, out="tune/bpr")
"""

from ._version import __version__  # noqa: F401


def train(*args, **kwargs):
    """See :func:`mmkgrec.api.train`."""
    from .api import train as _train

    return _train(*args, **kwargs)


def load(run_dir, device=None):
    """See :func:`mmkgrec.api.load`."""
    from .api import load as _load

    return _load(run_dir, device)


def tune(*args, **kwargs):
    """See :func:`mmkgrec.tuning.tune`."""
    from .tuning import tune as _tune

    return _tune(*args, **kwargs)
