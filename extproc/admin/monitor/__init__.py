"""What agents have been doing, to look at: the monitoring API and page on the admin port.

`api.py` reads the activity counts (`activity_counts`, written by extproc/activity/) and
the audit record's alerts and refusals (identical refusals grouped) over a time range,
behind the approvers' token check; `page.html` and `page.js` draw it, live, each alert
and refusal linking to its records on the recordings page (extproc/recordings/).
"""

from extproc.admin.monitor.api import MonitorApi

__all__ = ["MonitorApi"]
