"""``jobtrace schema export|roles`` and ``jobtrace check --fix``: the base's schema, from the operator's side.

- ``schema export [-o FILE]`` writes the live base's metadata (the metadata API's
  shape, what ``Schema.from_metadata`` reads);
- ``schema roles [--markdown]`` lists every role of the field mapping;
- ``check --fix [--yes]`` creates the fields the mapping needs and the base lacks,
  after listing them and asking, and says what Airtable's API cannot do (and what
  to click instead).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from .cli import UserError, read_settings, reader_for
from .schema import RoleInfo, Schema, role_reference

__all__ = ["add_parser", "cmd_fix", "roles_markdown"]


def add_parser(sub: Any) -> None:
    """Register ``schema`` (with ``export`` and ``roles``) on the ``jobtrace`` subparsers."""
    schema = sub.add_parser(
        "schema",
        help="export the base's schema; list the field mapping's roles",
        description="Tools for the base's schema. 'jobtrace check --fix' adds missing fields.",
    )
    verbs = schema.add_subparsers(dest="schema_command", metavar="SUBCOMMAND", parser_class=type(schema))
    verbs.required = True
    export = verbs.add_parser(
        "export",
        help="write the live base's metadata as JSON",
        description="Write the base's tables and fields (the metadata API's shape) as JSON: the file "
        "Schema.from_metadata(path) reads. Needs the token's schema.bases:read scope.",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: standard output)")
    export.set_defaults(handler=cmd_export)
    roles = verbs.add_parser(
        "roles",
        help="list the roles of the field mapping",
        description="List every role jobtrace writes: what it is for, its default field name and type.",
    )
    roles.add_argument("--markdown", action="store_true", help="as the README's Markdown table")
    roles.set_defaults(handler=cmd_roles)


def cmd_export(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    settings = read_settings(env)
    meta = reader_for(settings).metadata()  # within the base's shared budget
    if args.output:
        text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
        tmp = f"{args.output}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, args.output)
        except OSError as exc:
            raise UserError(f"cannot write {args.output}: {exc.strerror}") from None
        tables = ", ".join(repr(t["name"]) for t in meta.get("tables", []))
        print(f"wrote the schema of base {settings.base_id} ({tables}) to {args.output}", file=out)
    else:
        # To a terminal or pipe: every non-ASCII character \u-escaped, so the JSON stays exact and safe to show.
        out.write(json.dumps(meta, indent=2) + "\n")
    return 0


def roles_markdown(infos: list[RoleInfo] | None = None) -> str:
    """The README's role table, generated from the code (a test compares the two)."""
    rows = [
        "| Role | Tables | Default field | Type | What it is for |",
        "| --- | --- | --- | --- | --- |",
    ]
    for info in role_reference() if infos is None else infos:
        required = " (required)" if info.required else ""
        rows.append(
            f"| `{info.role}`{required} | {', '.join(info.tables)} | {info.field_name} | `{info.field_type}` "
            f"| {info.purpose} |"
        )
    return "\n".join(rows) + "\n"


def cmd_roles(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    if args.markdown:
        out.write(roles_markdown())
        return 0
    infos = role_reference()
    width = max(len(i.role) for i in infos)
    for info in infos:
        required = "required" if info.required else "optional"
        print(
            f"{info.role.ljust(width)}  {'+'.join(info.tables):<10}  {info.field_name} ({info.field_type}, {required})",
            file=out,
        )
        print(f"{''.ljust(width)}  {info.purpose}", file=out)
    return 0


def cmd_fix(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """``jobtrace check --fix``: plan, list, ask, create; then check again."""
    from .delivery.airtable import AirtableError
    from .sinks.airtable.fix import create_fields, plan_fixes

    settings = read_settings(env)
    schema = Schema.default()
    where = settings.endpoint_url or "https://api.airtable.com"
    print(f"base {settings.base_id} at {where}", file=out)
    reader = reader_for(settings)  # within the base's shared budget
    meta = reader.metadata()
    creates, manual = plan_fixes(meta, schema)
    if not creates and not manual:
        print("nothing to fix: the base has every field the mapping needs", file=out)
        return _check_again(args, env, out)
    if creates:
        print(f"jobtrace will make {len(creates)} change(s) through Airtable's metadata API:", file=out)
        for change in creates:
            print(f"  - {change}", file=out)
    if manual:
        print(f"{len(manual)} change(s) Airtable's API cannot make; do them in Airtable:", file=out)
        for step in manual:
            print(f"  - {step}", file=out)
    if not creates:
        return 1
    if not args.yes and not _confirm(f"Make the {len(creates)} change(s) above to base {settings.base_id}?", out):
        print("nothing changed (answer 'y', or run with --yes)", file=out)
        return 1
    try:
        # A create is not sent again after an error it may have come after (only after a 429).
        done = create_fields(reader.api, settings.base_id, creates, call=lambda fn: reader.run(fn, idempotent=False))
    except AirtableError as exc:
        if exc.kind in ("token", "no_access"):
            raise UserError(
                f"Airtable refused to change the schema ({exc.reason}): the token needs the "
                f"schema.bases:write scope and creator access to base {settings.base_id}"
            ) from None
        raise
    for field in done:
        print(f"created {field['type']} field {field['name']!r} ({field['id']})", file=out)
    code = _check_again(args, env, out)
    return 1 if manual else code


def _confirm(question: str, out: TextIO) -> bool:
    print(f"{question} [y/N] ", end="", file=out, flush=True)
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        answer = ""
    if not answer:
        print(file=out)
    return answer.strip().lower() in ("y", "yes")


def _check_again(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    from .cli import cmd_check

    print("checking again:", file=out)
    return cmd_check(argparse.Namespace(**{**vars(args), "fix": False}), env, out)
