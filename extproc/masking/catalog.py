"""Every detector tollgate has, by name: the modules that define them know nothing of each
other, and this is the one place that lists them (the order is the order `scan` asks)."""

from __future__ import annotations

from extproc.masking import decoding, keys, national_ids, people, phones
from extproc.masking.detectors import (
    Detector,
    connection_password,
    credit_card,
    email,
    iban,
    ip_address,
    jwt,
    private_key,
)

DETECTORS: tuple[Detector, ...] = (
    private_key, jwt, credit_card, *national_ids.DETECTORS, iban, email, *phones.DETECTORS,
    ip_address, *keys.DETECTORS, connection_password, *people.DETECTORS,
    decoding.UNDECODED,  # found by the decoding detector (masker.py puts it last)
)
BY_NAME: dict[str, Detector] = {d.name: d for d in DETECTORS}
