"""The simulated exchange: a matching engine and an account ledger in one process. It fills
against bars in Sim (`SimExchange`, the bar fill model) and against a live book and tape in
Paper (`PaperExchange`, the book-and-tape fill model), and reports its ledger like a venue."""

from runtime.exchanges.sim._exchange import Bar as Bar
from runtime.exchanges.sim._exchange import SimExchange as SimExchange
from runtime.exchanges.sim._paper import PaperExchange as PaperExchange
from runtime.exchanges.sim._paper import PaperFeed as PaperFeed
