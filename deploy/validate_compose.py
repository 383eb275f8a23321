"""Validate a compose file offline, as `docker compose config` would without an engine: the YAML against
the compose-spec JSON schema (from compose-go, the library Docker Compose loads files with), YAML merge
keys and `${VAR:-default}` interpolation applied first, then what the schema cannot say: every
`depends_on` names a service, and every ragloop worker role and the gateway has a service of its own.

Usage: python deploy/validate_compose.py --schema compose-spec.json deploy/compose/compose.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def interpolate(node: Any, environ: dict[str, str]) -> Any:
    """`${NAME}`, `${NAME:-default}` and `${NAME-default}` replaced as Compose does (unset → default or "")."""
    if isinstance(node, dict):
        return {key: interpolate(value, environ) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, environ) for value in node]
    if isinstance(node, str):
        return VARIABLE.sub(lambda m: environ.get(m["name"]) or (m["default"] or ""), node)
    return node


def problems(document: dict[str, Any], schema: dict[str, Any], roles: list[str]) -> list[str]:
    found = [f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
             for error in jsonschema.Draft7Validator(schema).iter_errors(document)]
    services = document.get("services", {})
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for dependency in depends if isinstance(depends, (dict, list)) else []:
            if dependency not in services:
                found.append(f"services/{name}/depends_on: no service named {dependency!r}")
    commands = {tuple(service.get("command", [])) for service in services.values()}
    found += [f"no service runs `ragloop worker {role}`" for role in [*roles, "gateway"] if ("worker", role) not in commands]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, required=True)
    parser.add_argument("compose", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from streams.runtime import ROLES

    document = interpolate(yaml.safe_load(args.compose.read_text()), dict(os.environ))
    found = problems(document, json.loads(args.schema.read_text()), list(ROLES))
    for problem in found:
        print(f"{args.compose}: {problem}", file=sys.stderr)
    if not found:
        print(f"validated {args.compose}: {len(document['services'])} services against the compose-spec schema")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
