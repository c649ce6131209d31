"""schemathesis hooks for .ci/schemathesis.sh.

A valid Idempotency-Key is made unique per generated request: the SPEC (§4)
answers a repeat of one key with another body 422, and generated cases share
the few example keys. Invalid keys (schema-violating cases) are left as
generated, so their rejection is still checked. Key reuse itself is tested in
tests/api/idempotency.rs.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, **kwargs):
    for name in list(case.headers or {}):
        if name.lower() == "idempotency-key" and VALID_KEY.match(str(case.headers[name])):
            case.headers[name] = f"st-{uuid.uuid4()}"
