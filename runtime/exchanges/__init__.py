"""Exchange implementations behind one interface: ccxt (live), sim (in-process)."""
