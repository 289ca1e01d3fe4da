"""OpenTelemetry's database conventions on the PostgreSQL front's spans, end to end: a
real client through a real Envoy to the machine's PostgreSQL, the spans read from what
the OTLP exporter sent (tests/standins/otlp_receiver.py). The HTTP front's exchanges are
held to the conventions in tests/test_telemetry_docs.py and tests/test_telemetry_semconv.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.e2e.test_postgres_e2e import customers_database, shop, url
from tests.support.gateway import Gateway, module_gateway
from tests.support.semconv import not_conventions


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any) -> Iterator[Gateway]:
    with customers_database("tollgate_semconv") as upstream_db, module_gateway(
            tmp_path_factory, otlp, "semconv", targets=[shop(upstream_db)],
            postgres={}) as running:
        yield running


READ = "SELECT name FROM customers WHERE ssn = ?"
MISSING = "SELECT id FROM semconv_missing WHERE id = ?"


def test_statements_carry_the_database_conventions(gw: Gateway, otlp: Any) -> None:
    # The receiver is the test process's: only the spans from here on are this test's.
    before = len(otlp.wait_for(lambda _: True))
    with psycopg.connect(url(gw), autocommit=True) as conn:
        assert conn.execute("SELECT name FROM customers WHERE ssn = '078-05-1120' "
                            "/* a comment */").fetchone()
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT id FROM semconv_missing WHERE id = 4242")

    def ended(spans: list[Any]) -> bool:
        return (any(s.attributes.get("db.query.text") == READ for s in spans)
                and any(s.attributes.get("error.type") == "42P01" for s in spans))

    spans = otlp.wait_for(lambda received: ended(received[before:]))[before:]
    # Each message of the extended protocol is an exchange: Parse, Execute.
    read = [s for s in spans if s.attributes.get("db.query.text") == READ]
    for span in read:
        assert {k: v for k, v in span.attributes.items() if k.startswith("db.")} == {
            "db.system": "postgresql", "db.system.name": "postgresql",
            "db.namespace": "shop", "db.user": "svc-pg-agent", "db.operation.name": "SELECT",
            "db.collection.name": "customers", "db.query.summary": "SELECT customers",
            "db.query.text": READ}
        assert "error.type" not in span.attributes
    # The database's SQLSTATE (undefined_table) on the exchange it answered.
    (failed,) = [s for s in spans if s.attributes.get("error.type") == "42P01"]
    assert failed.attributes["db.query.text"] == MISSING
    postgres = [s for s in spans if s.attributes.get("db.system") == "postgresql"]
    # Every span of the front names the system, the login's (CONNECT) too.
    assert {s.attributes.get("db.system.name") for s in postgres} == {"postgresql"}
    assert any(s.name.startswith("tollgate postgres CONNECT") for s in postgres)
    shown = str([s.attributes for s in postgres])
    assert "078-05-1120" not in shown and "4242" not in shown and "a comment" not in shown
    assert not not_conventions(k for s in postgres for k in s.attributes)
