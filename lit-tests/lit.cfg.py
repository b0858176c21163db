# lit configuration for Kiln's golden tests.
#
# Run from the repository root after `cargo build -p kiln`:
#   lit -sv lit-tests
# Substitutions: %kiln is the kiln binary ($KILN_BIN, else target/debug/kiln
# under $CARGO_TARGET_DIR or the repository), FileCheck is LLVM's
# ($FILECHECK, else /usr/lib/llvm-22/bin/FileCheck), %python is the project
# venv's Python ($KILN_PYTHON, else .venv/bin/python; onnx and numpy, for
# comparing outputs with scripts/compare_outputs.py).

import os
import sys

import lit.formats

config.name = "kiln"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".kir", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)

repo = os.path.dirname(config.test_source_root)
target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
kiln = os.environ.get("KILN_BIN", os.path.join(target_dir, "debug", "kiln"))
filecheck = os.environ.get("FILECHECK", "/usr/lib/llvm-22/bin/FileCheck")
python = os.environ.get("KILN_PYTHON", os.path.join(repo, ".venv", "bin", "python"))

if not os.path.exists(kiln):
    lit_config.fatal(f"kiln binary not found at {kiln}; run `cargo build -p kiln` or set KILN_BIN")

config.substitutions.append(("%kiln", kiln))
config.substitutions.append(("FileCheck", filecheck))
config.substitutions.append(("%python", python))
config.substitutions.append(("%scripts", os.path.join(repo, "scripts")))
# Keep log output out of test stderr regardless of the caller's settings.
config.environment["KILN_LOG"] = "error"
