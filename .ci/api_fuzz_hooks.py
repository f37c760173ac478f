"""Schemathesis hooks for .ci/api-fuzz: a fresh Idempotency-Key for every generated request
that carries one (positive data only: a negative case keeps its deliberately bad key)."""

import uuid

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not case.headers:
        return
    for name in list(case.headers):
        if name.lower() == "idempotency-key":
            case.headers[name] = str(uuid.uuid4())
