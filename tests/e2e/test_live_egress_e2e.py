"""Live sessions of the egress proxy end to end: curl's requests through the proxy are
listed as a session of front `egress` (by the proxy token: curl names no session);
ending it refuses every later request and CONNECT of the session 403, the reason in the
proxy's x-tollgate-reason header (curl prints it). A tunnel open already is not closed:
ext_proc hears nothing of a CONNECT once its headers are answered (docs/operators/
live-sessions.md).

The egress gateway and destinations of tests/egress/test_egress_e2e.py: real curl, real
Envoy, the test's own DNS server and servers.
"""

from __future__ import annotations

import time

from tests.e2e.test_live_sessions_e2e import end, listed, moderation
from tests.egress import test_egress_e2e as egress
from tests.egress.test_egress_e2e import curl, proxy_headers
from tests.support import tokens
from tests.support.gateway import Gateway

places, gw = egress.places, egress.gw


def test_an_ended_session_is_refused_its_next_request_and_tunnel(
        gw: Gateway, places: egress.Destinations) -> None:
    sub = "svc-live-egress"
    token = tokens.token(sub, ["agents"])
    first = curl(gw, f"http://app.test:{places.http.port}/one", token=token)
    assert first.returncode == 0, first.stderr
    (session,) = listed(gw, sub)
    assert (session["front"], session["target"]) == ("egress", "egress"), session
    assert session["session_id"].startswith("token:")
    asked, answer = end(gw, session["session_id"], "exfiltration")
    later = curl(gw, f"http://app.test:{places.http.port}/two", token=token)
    print(f"\nan end reached curl through the proxy (its next request refused) in "
          f"{(time.monotonic() - asked) * 1000:.0f} ms")
    assert answer["ended"] is True, answer
    assert "< HTTP/1.1 403" in later.stderr, later.stderr
    assert "this session was ended by sec-sam: exfiltration" in \
        proxy_headers(later)["x-tollgate-reason"]
    tunnel = curl(gw, "--cacert", str(places.tls.ca),
                  f"https://secure.test:{places.https.port}/lib", token=token)
    assert tunnel.returncode != 0
    assert "CONNECT tunnel failed, response 403" in tunnel.stderr, tunnel.stderr
    assert moderation(gw, session["session_id"])["meaning"]["moderation"]["front"] == "egress"
