"""Risk and operations (DESIGN §9): the limits (`Risk`), the guard that applies them, alerts.

The halt, resume and flatten actions send orders, so they live with `call` in
`runtime.modes`; this package decides, counts and alerts.
"""

from runtime.risk._alerts import Alert, AlertQueue, Webhook
from runtime.risk._guard import RiskGuard
from runtime.risk._limits import Risk

__all__ = ["Alert", "AlertQueue", "Risk", "RiskGuard", "Webhook"]
