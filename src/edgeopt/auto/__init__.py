"""Automatic search: the fastest variant of a model that stays faithful (``edgeopt auto``).

``settings`` says what is tried and how outcomes are recorded, ``search`` runs the search
(candidates, fidelity, screening, confirmation), ``report`` writes what it found.
"""

from edgeopt.auto.report import summary_rows, write_report
from edgeopt.auto.search import pick_winner, search
from edgeopt.auto.settings import (
    CANDIDATES,
    PRUNE_RATIOS,
    AutoResult,
    AutoSettings,
    Outcome,
    parse_bound,
)

__all__ = [
    "CANDIDATES",
    "PRUNE_RATIOS",
    "AutoResult",
    "AutoSettings",
    "Outcome",
    "parse_bound",
    "pick_winner",
    "search",
    "summary_rows",
    "write_report",
]
