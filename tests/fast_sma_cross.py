"""The bundled sma_cross on 1-second bars with short averages, so a Live or Paper test sees it
trade within seconds."""

from __future__ import annotations

from strategies.sma_cross import SmaCross


class FastSmaCross(SmaCross):
    timeframe = "1s"
    warmup = 6
    fast = 2
    slow = 5
