"""The bundled margin_trend on 1-second bars with short averages, so a Live or Paper test sees
it trade within seconds."""

from __future__ import annotations

from strategies.margin_trend import MarginTrend


class FastMarginTrend(MarginTrend):
    timeframe = "1s"
    warmup = 6
    fast = 2
    slow = 5
    offset = 0.0
