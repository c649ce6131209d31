"""schemathesis hooks for .ci/schemathesis.sh.

A valid Idempotency-Key is made unique per generated request: the SPEC (§4)
answers a repeat of one key with another body 422, and generated cases share
the few example keys. Invalid keys (schema-violating cases) are left as
generated, so their rejection is still checked. Key reuse itself is tested in
tests/api/idempotency.rs.

"Valid" is the documented form: 1 to 255 visible ASCII characters, with the
blanks around them that HTTP strips from every header value. The fresh key
has no blanks, so no value the HTTP client refuses to send (leading blanks)
reaches it.

A case that drops a header to see it refused (the coverage phase's "missing
`Authorization`") is left alone: schemathesis re-judges a case whose headers
a hook edited, and since `Authorization` is no declared parameter it would
call that case valid and send the configured token after all. Without a
token the service reads no key (keys are per user), so nothing is shared.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[ \t]*[!-~]{1,255}[ \t]*$")


def drops_a_header(case):
    """True for a coverage case whose point is a missing header."""
    data = case.meta.phase.data if case.meta is not None else None
    return (
        getattr(data, "scenario", None) == "missing_parameter"
        and getattr(data, "parameter_location", None) == "header"
    )


@schemathesis.hook
def before_call(context, case, **kwargs):
    if drops_a_header(case):
        return
    for name in list(case.headers or {}):
        if name.lower() == "idempotency-key" and VALID_KEY.match(str(case.headers[name])):
            case.headers[name] = f"st-{uuid.uuid4()}"
