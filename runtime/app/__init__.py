"""What users drive vigil with: `start` and `stop`, the IPython extension and `Session`, the
`vigil` command line and reports."""

from runtime.app._interactive import Session as Session
from runtime.app._interactive import load_ipython_extension as load_ipython_extension
from runtime.app._interactive import unload_ipython_extension as unload_ipython_extension
from runtime.app._lifecycle import start as start
from runtime.app._lifecycle import stop as stop
from runtime.app._report import Report as Report
from runtime.app._report import report_from_strategy as report_from_strategy
from runtime.app._report import report_from_trace as report_from_trace
