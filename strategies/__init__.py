"""The bundled example strategies: `sma_cross` (spot, several markets) and `margin_trend`
(isolated-margin perpetuals). Load one with ``runtime.strategy("sma_cross", mode=...)``."""
