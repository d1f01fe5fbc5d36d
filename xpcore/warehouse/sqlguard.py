"""The lexical SQL guard on every SQL entry (docs/decisions/0032-sql-guard.md; pure, no database).

Three questions, each answered with a refusal reason (one line) or ``None``:

- :func:`external_refusal`: does the statement reach outside the database? Table functions and scalar
  functions that read or write files, URLs, object stores, other servers or programs (``file``, ``url``,
  ``s3``, ``remote``, ``executable``, ``mysql``, ``python`` …, :data:`EXTERNAL_FUNCTIONS`), ``INTO OUTFILE``,
  ``FROM INFILE``, settings that name a file path, and any call of a quoted name or a placeholder (which
  could spell one of those). Allowed only when the operator opts in (``XP_SQL_ALLOW_EXTERNAL=true``).
- :func:`read_only_refusal`: one statement that only reads — it starts with SELECT, WITH, SHOW, DESCRIBE,
  EXPLAIN or EXISTS and holds no writing keyword anywhere (``WITH … INSERT``), and nothing external.
- :func:`routed_write_refusal`: one of the statements the routed commands send through the up API
  (``INSERT INTO xp.t …``, ``ALTER TABLE xp.t DELETE|UPDATE …``, ``OPTIMIZE TABLE xp.t …``) and nothing
  external; DDL and everything else is refused (migrations run in the owner itself).

The engine enforces its own layer beneath (chDB's read-only connection runs ``readonly=1``, which refuses
every table function that reads outside; see the adapters). Text is read with the tokenizer of
:mod:`xpcore.warehouse.sqltext`, so strings, quoted names and comments never confuse it:
``file/**/(`` and ``FILE\\n(`` are calls, ``'file('`` is a string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xpcore.warehouse.sqltext import _scan, split_statements

__all__ = [
    "EXTERNAL_FUNCTIONS",
    "EXTERNAL_FUNCTION_FAMILIES",
    "FILE_SETTINGS",
    "READ_ONLY_KEYWORDS",
    "ROUTED_DATABASE",
    "WRITE_KEYWORDS",
    "external_refusal",
    "is_external_function",
    "read_only_refusal",
    "routed_insert_refusal",
    "routed_write_refusal",
]

READ_ONLY_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
"""Statements that may run on a read-only path."""

EXTERNAL_FUNCTIONS = frozenset(
    {
        # files and programs of the machine running the engine
        "file", "filecluster", "filesystem", "executable", "executablepool", "input", "python",
        "arrowstream", "eval",
        # URLs, object stores, file systems of other machines
        "url", "urlcluster", "s3", "s3cluster", "gcs", "oss", "cosn", "hdfs", "hdfscluster",
        "azureblobstorage", "azureblobstoragecluster", "hive", "arrowflight", "prometheusquery",
        "prometheusqueryrange",
        # other servers and databases
        "remote", "remotesecure", "cluster", "clusterallreplicas", "mysql", "postgresql", "mongodb",
        "redis", "sqlite", "jdbc", "odbc", "bigquery", "ytsaurus",
    }
)  # fmt: skip
"""Lower-cased names of functions that reach outside the database (table functions and the scalar
``file``); every name starting with one of :data:`EXTERNAL_FUNCTION_FAMILIES` counts as well."""

EXTERNAL_FUNCTION_FAMILIES = ("s3", "hdfs", "azureblob", "deltalake", "iceberg", "hudi", "paimon", "url")
"""Prefixes of data-lake and object-store function families (``icebergS3Cluster``, ``deltaLakeLocal`` …).
``url`` is matched as a prefix only when followed by ``cluster`` (``URLHash`` is a harmless function)."""

FILE_SETTINGS = frozenset(
    {
        "input_format_record_errors_file_path",
        "format_schema",
        "format_schema_source",
        "format_template_resultset",
        "format_template_row",
        "schema_inference_cache_path",
        "into_outfile_create_parent_directories",
    }
)
"""Settings whose value names a file the engine reads or writes."""

WRITE_KEYWORDS = frozenset(
    {
        "INSERT", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "ATTACH", "DETACH", "OPTIMIZE",
        "SYSTEM", "KILL", "GRANT", "REVOKE", "DELETE", "UPDATE", "EXCHANGE", "UNDROP", "BACKUP",
        "RESTORE",
    }
)  # fmt: skip
"""Keywords of statements that change something; refused anywhere in a read-only statement."""

ROUTED_DATABASE = "xp"
"""The only database the up API writes into."""

_ALTER_CHANGES = frozenset(
    {
        "ADD", "DROP", "MODIFY", "RENAME", "CLEAR", "MATERIALIZE", "ATTACH", "DETACH", "FREEZE",
        "UNFREEZE", "REPLACE", "MOVE", "FETCH", "COMMENT", "RESET", "REMOVE", "APPLY", "TTL",
    }
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d[\w.]*|\S")
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class _Token:
    kind: str
    """``word`` (a bare identifier or keyword), ``name`` (a quoted name), ``string``, ``placeholder``,
    ``number`` or ``punct``."""
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper()


def _tokens(statement: str) -> list[_Token]:
    """The statement as tokens; comments dropped, quoted names unquoted (escapes left as they are)."""
    tokens: list[_Token] = []
    for kind, text in _scan(statement):
        if kind == "comment" or kind == ";":
            continue
        if kind == "placeholder":
            tokens.append(_Token("placeholder", text))
        elif kind == "quoted":
            quote = text[0]
            body = text[1:-1] if len(text) > 1 and text[-1] == quote else text[1:]
            tokens.append(_Token("string" if quote == "'" else "name", body))
        else:
            for match in _WORD.finditer(text):
                word = match.group(0)
                if word[0].isalpha() or word[0] == "_":
                    tokens.append(_Token("word", word))
                elif word[0].isdigit():
                    tokens.append(_Token("number", word))
                else:
                    tokens.append(_Token("punct", word))
    return tokens


def is_external_function(name: str) -> bool:
    """Whether a function of this name (any case) reaches outside the database."""
    lowered = name.lower()
    if lowered in EXTERNAL_FUNCTIONS:
        return True
    families = (f for f in EXTERNAL_FUNCTION_FAMILIES if f != "url")
    return any(lowered.startswith(f) for f in families) or lowered.startswith("urlcluster")


def _external_in(tokens: list[_Token]) -> str | None:
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        calls = following is not None and following.text == "("
        previous = tokens[index - 1] if index else None
        if previous is not None and previous.kind == "punct" and previous.text == ".":
            calls = False  # xp.file (…): a qualified table name before a column list, not a call
        if calls and token.kind == "word" and is_external_function(token.text):
            return f"{token.text}() reaches outside the database (files, URLs, other servers)"
        if calls and token.kind in ("name", "placeholder"):
            return f"calling a quoted name or a placeholder ({token.text}) is not allowed"
        before = previous.upper if previous is not None else ""
        if token.kind == "word" and token.upper in ("OUTFILE", "INFILE") and before in ("INTO", "FROM"):
            return f"{before} {token.upper} reads or writes a file"
        if token.kind in ("word", "name") and token.text.lower() in FILE_SETTINGS:
            return f"the setting {token.text} names a file"
    return None


def _one_statement(sql: str) -> tuple[str | None, str]:
    statements = split_statements(sql)
    if not statements:
        return "empty query", ""
    if len(statements) > 1:
        return f"{len(statements)} statements given; run one statement at a time", ""
    return None, statements[0]


def external_refusal(sql: str) -> str | None:
    """Why ``sql`` reaches outside the database (files, URLs, other servers), or ``None``."""
    return _external_in(_tokens(sql))


def _first_word(tokens: list[_Token]) -> str:
    for token in tokens:
        if token.text == "(":
            continue
        return token.upper if token.kind == "word" else ""
    return ""


def read_only_refusal(sql: str, *, allow_external: bool = False) -> str | None:
    """Why ``sql`` may not run on a read-only path, or ``None`` when it only reads.

    Read-only: exactly one statement starting with SELECT, WITH, SHOW, DESCRIBE, EXPLAIN or EXISTS, with
    no writing keyword anywhere (``WITH x AS (…) INSERT …``), no ``INTO OUTFILE``, and — unless
    ``allow_external`` — nothing that reaches outside the database (:func:`external_refusal`).
    """
    problem, statement = _one_statement(sql)
    if problem is not None:
        return problem
    tokens = _tokens(statement)
    keyword = _first_word(tokens)
    if keyword not in READ_ONLY_KEYWORDS:
        allowed = ", ".join(sorted(READ_ONLY_KEYWORDS - {"DESC"}))
        return f"{keyword or 'this statement'} is not a read-only statement ({allowed})"
    for index, token in enumerate(tokens):
        if token.kind == "word" and token.upper == "OUTFILE" and index and tokens[index - 1].upper == "INTO":
            return "INTO OUTFILE writes a file"
    if keyword not in ("SHOW", "DESCRIBE", "DESC", "EXISTS"):  # SHOW CREATE TABLE, SHOW GRANTS read
        for index, token in enumerate(tokens):
            if token.kind != "word" or token.upper not in WRITE_KEYWORDS:
                continue
            neighbours = [tokens[i] for i in (index - 1, index + 1) if 0 <= i < len(tokens)]
            if any(t.kind == "punct" and t.text == "." for t in neighbours):
                continue  # system.tables, t.update: a name, not a keyword
            return f"{token.upper} writes; a read-only statement may not contain it"
    return None if allow_external else _external_in(tokens)


def _table_at(tokens: list[_Token], index: int) -> tuple[str | None, int]:
    """``(database.name, next index)`` of a qualified table name starting at ``index``."""
    names: list[str] = []
    i = index
    while i < len(tokens) and tokens[i].kind in ("word", "name"):
        names.append(tokens[i].text)
        i += 1
        if i < len(tokens) and tokens[i].text == "." and len(names) < 2:
            i += 1
            continue
        break
    if len(names) != 2 or not all(_PLAIN_NAME.match(n) for n in names):
        return None, i
    return ".".join(names), i


def _in_routed_database(table: str | None) -> str | None:
    if table is None:
        return f"name the table as {ROUTED_DATABASE}.name"
    if table.split(".")[0] != ROUTED_DATABASE:
        return f"{table} is outside database {ROUTED_DATABASE}"
    return None


def routed_insert_refusal(table: str) -> str | None:
    """Why the up API may not insert rows into ``table``, or ``None`` (a plain ``xp.name``)."""
    parts = table.split(".")
    if len(parts) != 2 or not all(_PLAIN_NAME.match(p) for p in parts):
        return f"table must be written {ROUTED_DATABASE}.name with plain identifiers, got {table!r}"
    return _in_routed_database(table)


def routed_write_refusal(sql: str, *, allow_external: bool = False) -> str | None:
    """Why the up API may not run ``sql`` as a command, or ``None``.

    Allowed: one ``INSERT INTO [TABLE] xp.t …``, ``ALTER TABLE xp.t DELETE|UPDATE …`` (mutations, no
    schema change) or ``OPTIMIZE TABLE xp.t …``: what the routed jobs, the stream worker's repairs and
    `xp sql --write` maintenance send. No DDL (migrations run in the owner), nothing external unless
    ``allow_external``.
    """
    problem, statement = _one_statement(sql)
    if problem is not None:
        return problem
    tokens = _tokens(statement)
    words = [t.upper if t.kind == "word" else "" for t in tokens]
    keyword = words[0] if words else ""
    if keyword == "INSERT":
        start = 2 if words[1:2] == ["INTO"] else 1
        if words[start : start + 1] == ["TABLE"]:
            start += 1
        if words[start : start + 1] == ["FUNCTION"]:
            return "INSERT INTO FUNCTION writes outside the database"
        reason = _in_routed_database(_table_at(tokens, start)[0])
    elif keyword == "ALTER":
        if words[1:2] != ["TABLE"]:
            return "only ALTER TABLE … DELETE/UPDATE (a mutation of rows) may run through the up API"
        table, after = _table_at(tokens, 2)
        reason = _in_routed_database(table)
        if reason is None and words[after : after + 1] not in (["DELETE"], ["UPDATE"]):
            return "only ALTER TABLE … DELETE/UPDATE (a mutation of rows) may run through the up API"
        changes = sorted({w for w in words[after + 1 :] if w in _ALTER_CHANGES})
        if reason is None and changes:
            return f"ALTER … {changes[0]} changes the schema; schema changes are migrations"
    elif keyword == "OPTIMIZE":
        if words[1:2] != ["TABLE"]:
            return "write OPTIMIZE TABLE xp.name"
        reason = _in_routed_database(_table_at(tokens, 2)[0])
    else:
        return (
            f"{keyword or 'this statement'} may not run through the up API (only INSERT, ALTER TABLE … "
            "DELETE/UPDATE and OPTIMIZE TABLE into xp tables; schema changes are migrations)"
        )
    if reason is not None:
        return reason
    return None if allow_external else _external_in(tokens)
