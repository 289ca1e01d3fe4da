"""The admin HTTP server (`listen.admin`): the approvers' API and page, the monitor, the
recordings, the metrics.

It runs on tollgate's event loop, beside the gRPC server, so an approval given here
wakes a request held in this process at once. Anything it cannot route, or fails at,
is answered in the same JSON error shape as the API. server.py is the server itself;
approvals/, monitor/ and recordings/ each bring their routes and page.

Layer: fronts and surfaces (pyproject.toml's import contract): imports its own package and
the layers below it.
"""

from __future__ import annotations

from extproc.admin.server import AdminError, Handler, page_routes, start

__all__ = ["AdminError", "Handler", "page_routes", "start"]
