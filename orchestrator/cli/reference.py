"""`decaylab options` and `decaylab schema`: the study file's keys, from the schema itself."""

from __future__ import annotations

import json

from orchestrator.cli import args as a


def add(sub, epilog: str) -> None:
    a.command(sub, "options", options, "every study-file key with its default and meaning", epilog)
    a.command(sub, "schema", schema, "the JSON Schema of study files (for editors: YAML language server)", epilog)


def options(args) -> int:
    from orchestrator.study.docs import documented_options

    for key, default, doc in documented_options():
        print(f"{key:34s} {default:28s} {doc}")
    return 0


def schema(args) -> int:
    from orchestrator.study.schema import study_schema

    print(json.dumps(study_schema(), indent=2))
    return 0
