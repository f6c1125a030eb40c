#!/usr/bin/env python3
"""Validates lines of the adapter protocol against docs/kensho-adapter-1.schema.json with an
independent JSON Schema validator (python3-jsonschema), as an adapter in another language would.

Input (stdin): one line per case, `OP<TAB>JSON`: JSON is an operation when OP is `>`, else an
event or ack answering operation OP. Output: one line per case, `ok` or `invalid: REASON`.
Exits 77 when python3-jsonschema is missing."""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("SKIP: python3-jsonschema is not installed", file=sys.stderr)
    sys.exit(77)

schema = json.load(open(sys.argv[1]))
validator_class = jsonschema.validators.validator_for(schema)
validator_class.check_schema(schema)
line_validator = validator_class(schema)


def ack_validator(op):
    sub = {"$ref": f"#/$defs/ack-{op}", "$defs": schema["$defs"]}
    return validator_class(sub)


for raw in sys.stdin:
    raw = raw.rstrip("\n")
    if not raw:
        continue
    op, text = raw.split("\t", 1)
    value = json.loads(text)
    errors = list(line_validator.iter_errors(value))
    if not errors and op != ">" and value.get("event") == "ack" and value.get("error") is None:
        errors = list(ack_validator(op).iter_errors(value))
    print("ok" if not errors else "invalid: " + errors[0].message[:200].replace("\n", " "))
