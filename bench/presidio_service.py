"""Presidio's analyzer and anonymizer over HTTP, as LiteLLM's Presidio guardrail calls them.

Run: `python -m bench.presidio_service --port N` (bench/peers.py starts it; needs the
`bench` extra).

LiteLLM's guardrail posts to `<analyzer>/analyze` and `<anonymizer>/anonymize`: Presidio's
own servers, shipped as Docker images (Flask apps that are not in the PyPI packages), which
cannot run here. This serves the same two routes with the same request and answer shapes
from the PyPI packages in one process: the analyzer is bench/masking.py's (Presidio's
predefined recognizers on a blank spaCy pipeline: its NER model is a download from outside
PyPI, so names and places go undetected; e-mails, SSNs, cards, phones, IBANs and IPs are
patterns and are found), the anonymizer Presidio's AnonymizerEngine (default: each entity
replaced by `<ENTITY_TYPE>`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from aiohttp import web

from bench.masking import presidio


def app() -> web.Application:
    """The two routes: one analyzer and one anonymizer engine, built once."""
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    analyzer, anonymizer = presidio(), AnonymizerEngine()

    async def analyze(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        found = analyzer.analyze(
            text=body["text"], language=body.get("language", "en"),
            entities=body.get("entities"), score_threshold=body.get("score_threshold"),
            correlation_id=body.get("correlation_id"))
        return web.Response(text=json.dumps([r.to_dict() for r in found]),
                            content_type="application/json")

    async def anonymize(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        operators = {entity: OperatorConfig.from_json(config)
                     for entity, config in (body.get("anonymizers") or {}).items()}
        result = anonymizer.anonymize(
            text=body["text"],
            analyzer_results=[RecognizerResult.from_json(r) for r in body["analyzer_results"]],
            operators=operators or None)
        return web.Response(text=result.to_json(), content_type="application/json")

    application = web.Application()
    application.router.add_post("/analyze", analyze)
    application.router.add_post("/anonymize", anonymize)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
