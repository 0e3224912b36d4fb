"""One loaded index version as search reads it: the version's files, the product table it is served with and the
store its vectors can be read back from. Every ranking function works over one of these, so a query never mixes
two versions even while a new one is published."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from indexer.store import Store
from indexer.vectors import LoadedVersion
from search.products import ProductTable
from search.suggest import Suggester


@dataclass
class IndexState:
    """The current version with its product table (loaded together, replaced together)."""

    version: LoadedVersion
    table: ProductTable
    store: Store

    @cached_property
    def suggester(self) -> Suggester:
        """Search-box phrases of this version's products, built on the first suggestion asked for."""
        return Suggester(self.table)
