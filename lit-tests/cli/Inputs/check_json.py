"""Reads stderr of `kiln --message-format=json` from stdin: every line must be a JSON object
(nothing else may be printed), every diagnostic has all keys, and the first diagnostic must
have the KEY=VALUE pairs given as arguments (VALUE compared as JSON when it parses, else as a
string; `KEY~TEXT` checks that the value contains TEXT). Prints the diagnostics' codes."""

import json
import sys

KEYS = {"type", "level", "code", "exit_code", "message", "file", "node", "line", "column"}
lines = [ln for ln in sys.stdin.read().splitlines() if ln.strip()]
if not lines:
    sys.exit("no diagnostics on stderr")
objects = [json.loads(ln) for ln in lines]
diags = [o for o in objects if o.get("type") == "diagnostic"]
for d in diags:
    missing = KEYS - d.keys()
    if missing:
        sys.exit(f"diagnostic without {sorted(missing)}: {d}")
first = diags[0]
for spec in sys.argv[1:]:
    if "~" in spec and ("=" not in spec or spec.index("~") < spec.index("=")):
        key, text = spec.split("~", 1)
        if text not in str(first[key]):
            sys.exit(f"{key}: {first[key]!r} does not contain {text!r}")
        continue
    key, raw = spec.split("=", 1)
    try:
        want = json.loads(raw)
    except json.JSONDecodeError:
        want = raw
    if first[key] != want:
        sys.exit(f"{key}: {first[key]!r} != {want!r}")
print(" ".join(str(d["code"]) for d in diags))
