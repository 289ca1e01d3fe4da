"""The policy's `mask` decisions turned into one `MaskSpec`, and the process's masker."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from extproc.masking import ner
from extproc.masking.images import ImageLimits, ImageMasker
from extproc.masking.masker import Masker, MaskSpec

log = logging.getLogger("tollgate.masking")


class MaskError(ValueError):
    """A policy's `mask` that names no existing detector or strategy (a policy error)."""


def new_masker(hmac_key: bytes | None, model: str | None = None,
               model_budget_ms: float = ner.DEFAULT_BUDGET_MS,
               images: ImageLimits | None = None) -> Masker:
    """The process's masker. Without a configured key, hashes are keyed per process.
    `model` (config `masking.model`) is loaded now, once: not installed, it raises
    `ner.ModelUnavailable` before anything is served. `images`: the bounds an image's text
    is read within (config `masking.image_*`)."""
    if hmac_key is None:
        log.warning("masking.hash_key is not set: the `hash` strategy uses a key made for this "
                    "process, so hashed values do not join across restarts or replicas")
        hmac_key = secrets.token_bytes(32)
    loaded = ner.load(model, model_budget_ms) if model is not None else None
    if loaded is not None:
        log.info("masking model %s loaded, %.0f ms per body", model, model_budget_ms)
    return Masker(hmac_key, loaded, ImageMasker(images))


def spec_of(masks: Iterable[Mapping[str, Sequence[str]]]) -> MaskSpec | None:
    """One spec for every `mask` the exchange's decisions asked for (None: mask nothing).

    Masks add up: what any decision asked to hide stays hidden (a mask without
    `actions` hides in actions what it hides elsewhere). The strategy of the last
    decision that names one wins.
    """
    merged: dict[str, tuple[str, ...]] = {}
    for mask in masks:
        if not (mask.get("detectors") or mask.get("fields") or mask.get("actions")
                or mask.get("derived") or mask.get("model")):
            continue
        if "actions" not in mask:
            mask = {**mask, "actions": mask.get("detectors", ())}
        for key, values in mask.items():
            if key == "strategy":
                merged[key] = tuple(values)
            else:
                merged[key] = tuple(dict.fromkeys((*merged.get(key, ()), *values)))
    if not merged:
        return None
    return _spec(tuple(sorted(merged.items())))


@lru_cache(maxsize=256)
def _spec(mask: tuple[tuple[str, tuple[str, ...]], ...]) -> MaskSpec:
    """Built once per distinct mask: a pack asks for a handful."""
    try:
        return MaskSpec.from_policy(dict(mask))
    except ValueError as exc:
        raise MaskError(str(exc)) from None
