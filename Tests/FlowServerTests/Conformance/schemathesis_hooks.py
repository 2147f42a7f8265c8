"""Schemathesis hooks for flowgate's conformance run (CollectionEndToEndTests).

Only what JSON Schema cannot say goes here; nothing here hides a failure.

- `POST /api/auth/auth/tokens/`: `expires` must lie in the future (SPEC 9.2). The document
  says it is an RFC 3339 date-time, which it must be; whether it is later than now depends on
  the clock, so generated requests whose `expires` is already past are dropped.
"""
from datetime import datetime, timezone

import schemathesis


def _past(text):
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00").replace("t", "T"))
    except ValueError:
        return False
    return when.tzinfo is not None and when <= datetime.now(timezone.utc)


@schemathesis.hook
def filter_case(context, case):
    operation = case.operation
    if operation.path != "/api/auth/auth/tokens/" or operation.method.lower() != "post":
        return True
    body = case.body
    return not (isinstance(body, dict) and isinstance(body.get("expires"), str) and _past(body["expires"]))
