"""What agents have been doing, to look at: the monitoring API and page on the admin port.

`api.py` reads the activity counts (`activity_counts`, written by extproc/activity/) and
the audit record (its alerts and refusals, and any trace's records as stored), behind
the approvers' token check; `page.html` and `page.js` draw it, live.
"""

from extproc.monitor.api import MonitorApi

__all__ = ["MonitorApi"]
