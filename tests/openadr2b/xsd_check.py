"""Validate XML files against openleadr's OpenADR 2.0b schema (oadr_20b.xsd).

Run with openleadr's own venv (its lxml and the schema it ships):
`.venv-openleadr/bin/python tests/openadr2b/xsd_check.py FILE...`; prints one JSON line per
file, `{"file": ..., "errors": [...]}` (empty when valid).
"""

import json
import os
import sys

import openleadr
from lxml import etree

SCHEMA = etree.XMLSchema(
    etree.parse(os.path.join(os.path.dirname(openleadr.__file__), "schema", "oadr_20b.xsd"))
)

for name in sys.argv[1:]:
    with open(name, "rb") as f:
        doc = etree.fromstring(f.read())
    ok = SCHEMA.validate(doc)
    errors = [] if ok else [str(e) for e in SCHEMA.error_log]
    print(json.dumps({"file": name, "errors": errors}))
