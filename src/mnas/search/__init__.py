"""Layer 5: the search loop (`search`), its `Budget`, and the events it reports to callbacks."""

from mnas.search.budget import Budget
from mnas.search.loop import SearchEvent, search

__all__ = ["Budget", "SearchEvent", "search"]
