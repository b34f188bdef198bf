"""SQL over a study's rows with Polars, and export of the result.

Queries see the study's tables (``rows``, ``reports``, ``trials``) and nothing else. Polars SQL has table
functions that read any file (``SELECT * FROM read_csv('/etc/passwd')``) and, as of Polars 2.1, no switch
to turn them off, so the query is checked before Polars sees it: it is split into tokens (strings,
quoted names, comments, words), every function call in a table position, or named ``read_*``/``scan_*``,
is refused, and the query Polars runs is rebuilt from those tokens (comments dropped, every string and
quoted name re-quoted in the one plain form), so that Polars reads exactly the tokens that were checked
(no dialect corner, such as nested comments or prefixed and dollar-quoted strings, can hide a call).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from sweeper.errors import UserError, first_line
from sweeper.results import check_study_dir
from sweeper.store import scan_rows

TABLES = "tables: rows, reports, trials"
_WORD = re.compile(r"""[^\s!"%&'()*+,\-./:;<=>?\[\\\]^`{|}~]+""")
"""A word: letters, digits, ``_ $ # @`` and any other non-ASCII character (never a quote or an operator)."""
_PLAIN_DOLLAR_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
"""Words with ``$`` must be plain names (Polars reads ``$...`` as placeholders or dollar-quoted strings)."""
_BITS = re.compile(r"[0-9A-Fa-f]*")
_STARTS = {"select", "with", "from", "values", "show", "explain", "describe", "("}
_TABLE_START = {"from", "join", "lateral", "apply", "table"}
_CLAUSES = {"select", "where", "group", "having", "order", "limit", "offset", "fetch", "qualify", "window",
            "union", "except", "intersect", "on", "using", "values", "returning", "set"}
_FROM_SYNTAX = {"extract", "substring", "substr", "trim", "overlay"}
"""Functions whose arguments use FROM (``EXTRACT(year FROM t)``): no table list inside their parentheses."""
_TABLE_FUNCTIONS_ALLOWED = {"unnest"}

Token = tuple[str, str]
"""(kind, text): kind is word, ident (a quoted name; text unquoted), string (text unquoted), punct or space."""


def run_query(study_dir: str | Path, sql: str) -> pl.DataFrame:
    """Run ``sql`` with tables ``rows``, ``reports`` and ``trials`` bound to the study's rows."""
    rows = scan_rows(check_study_dir(study_dir))
    safe = checked_sql(sql)
    ctx = pl.SQLContext(
        rows=rows,
        reports=rows.filter(pl.col("row_kind") == "report"),
        trials=rows.filter(pl.col("row_kind") == "summary"),
    )
    try:
        return ctx.execute(safe, eager=True)
    except (pl.exceptions.PolarsError, ValueError, OSError) as exc:
        raise UserError(f"query: {first_line(exc)} ({TABLES}; quote dotted names: \"m.loss\")") from None


def checked_sql(sql: str) -> str:
    """``sql`` rebuilt from its tokens, or a UserError if it reads anything but the study's tables."""
    tokens = tokenize(sql)
    significant = [t for t in tokens if t[0] != "space"]
    if not significant:
        raise UserError(f"query: empty; expected a SELECT over the study's {TABLES}")
    first = significant[0][1].lower() if significant[0][0] in ("word", "punct") else ""
    if first not in _STARTS:
        raise UserError(f"query: {significant[0][1]}: only queries that read are allowed (SELECT ...; {TABLES})")
    _check_calls(significant)
    return render(tokens)


def tokenize(sql: str) -> list[Token]:
    """Split ``sql`` into tokens as Polars' SQL tokenizer does (comments become one space)."""
    tokens: list[Token] = []
    i = 0
    while i < len(sql):
        ch = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end + 1
            tokens.append(("space", " "))
        elif sql.startswith("/*", i):
            i = _comment_end(sql, i)
            tokens.append(("space", " "))
        elif ch in "'\"`":
            text, i = _quoted(sql, i)
            tokens.append(("string" if ch == "'" else "ident", text))
        elif ch.isspace():
            tokens.append(("space", ch))
            i += 1
        elif match := _WORD.match(sql, i):
            word = match.group()
            if "$" in word and not _PLAIN_DOLLAR_WORD.fullmatch(word):
                raise UserError(f"query: {word}: '$' placeholders and dollar-quoted strings are not supported; "
                                "write strings in single quotes")
            tokens.append(("word", word))
            i = match.end()
        else:
            tokens.append(("punct", ch))
            i += 1
    return tokens


def _comment_end(sql: str, start: int) -> int:
    """The index after the ``/* ... */`` comment at ``start`` (nested comments count, as in Polars)."""
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise UserError("query: a /* comment is not closed with */")


def _quoted(sql: str, start: int) -> tuple[str, int]:
    """The text of the quoted string or name at ``start`` (a doubled quote stands for itself) and the index
    after it; backslashes are plain characters, as in Polars."""
    quote, i, parts = sql[start], start + 1, []
    while True:
        end = sql.find(quote, i)
        if end < 0:
            raise UserError(f"query: a {quote} quote is not closed")
        parts.append(sql[i:end])
        if sql.startswith(quote * 2, end):
            parts.append(quote)
            i = end + 2
        else:
            return "".join(parts), end + 1


def render(tokens: list[Token]) -> str:
    """SQL text of ``tokens``: strings and quoted names in plain quotes, set apart from a word before them (so
    no prefix such as E'', R'' or U&'' changes how they are read), except hex and bit strings X'..', B'..'."""
    out: list[str] = []
    for n, (kind, text) in enumerate(tokens):
        if kind not in ("string", "ident"):
            out.append(text)
            continue
        quote = "'" if kind == "string" else '"'
        prev = tokens[n - 1] if n else ("space", "")
        prefix = prev[0] == "word" and prev[1].lower() in ("x", "b") and kind == "string" and _BITS.fullmatch(text)
        out.append(("" if prefix or prev[0] == "space" else " ") + quote + text.replace(quote, quote * 2) + quote)
    return "".join(out)


def _check_calls(tokens: list[Token]) -> None:
    """Refuse table functions: a call in a table position (after FROM or JOIN, or after a comma or an opening
    parenthesis in a FROM list), bar UNNEST, and any call named read_* or scan_*, wherever it is."""
    # Per parenthesis depth: "tables" in a FROM list, "args" inside EXTRACT(... FROM ...) and the like,
    # "expr" anywhere else.
    state = ["expr"]
    for n, (kind, text) in enumerate(tokens):
        word = text.lower() if kind == "word" else ""
        if (kind, text) == ("punct", "("):
            state.append(_paren_state(tokens[n - 1] if n else ("punct", ""), state[-1]))
        elif (kind, text) == ("punct", ")") and len(state) > 1:
            state.pop()
        elif word == "select":
            state[-1] = "expr"
        elif word in ("from", "join") and state[-1] != "args":
            state[-1] = "tables"
        elif word in _CLAUSES and state[-1] != "args":
            state[-1] = "expr"
        if kind in ("word", "ident") and n + 1 < len(tokens) and tokens[n + 1] == ("punct", "("):
            _check_call(tokens, n, state[-1] == "tables")


def _paren_state(prev: Token, outer: str) -> str:
    """The state inside a parenthesis opened after ``prev``: a call's arguments are expressions (FROM there
    is part of the function's syntax), a bare parenthesis keeps the state around it."""
    name = prev[1].lower() if prev[0] in ("word", "ident") else None
    if name in _FROM_SYNTAX and prev[0] == "word":
        return "args"
    if name is not None and name not in _TABLE_START:
        return "expr"
    return outer


def _check_call(tokens: list[Token], n: int, in_tables: bool) -> None:
    """Refuse the call whose (last) name is ``tokens[n]`` if it is a table function."""
    start = n
    while start >= 2 and tokens[start - 1] == ("punct", ".") and tokens[start - 2][0] in ("word", "ident"):
        start -= 2
    name = ".".join(tokens[i][1] for i in range(start, n + 1, 2))
    before = tokens[start - 1] if start else ("punct", "")
    table_position = in_tables and (before in (("punct", ","), ("punct", "(")) or (
        before[0] == "word" and before[1].lower() in _TABLE_START))
    base = tokens[n][1].lower()
    if base.startswith(("read_", "scan_")) or (table_position and base not in _TABLE_FUNCTIONS_ALLOWED):
        raise UserError(f"query: {name}(...): table functions are not allowed; a query reads only the study's "
                        f"{TABLES}")


def print_table(frame: pl.DataFrame, limit: int = 200) -> None:
    """Print a frame as a Rich table."""
    from rich.console import Console
    from rich.table import Table

    from sweeper.fmt import fmt_num

    table = Table(show_lines=False)
    for name in frame.columns:
        table.add_column(name, overflow="fold")
    for row in frame.head(limit).iter_rows():
        table.add_row(*(fmt_num(v) if isinstance(v, (int, float)) else ("" if v is None else str(v)) for v in row))
    console = Console()
    console.print(table)
    if frame.height > limit:
        console.print(f"... {frame.height - limit} more rows (use --format csv -o FILE for all)")


def export(frame: pl.DataFrame, fmt: str, output: str | None) -> None:
    """Write ``frame`` as csv/json/parquet to ``output`` (stdout for csv and json when absent)."""
    if fmt == "parquet" and not output:
        raise UserError("--format parquet: needs -o FILE")
    if not output:
        if fmt == "json":
            print(frame.write_json())
        else:
            print(frame.write_csv(), end="")
        return
    path = check_output(output)
    try:
        if fmt == "parquet":
            frame.write_parquet(path)
        elif fmt == "json":
            frame.write_json(path)
        else:
            frame.write_csv(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserError(f"-o {output}: cannot write the file ({_reason(exc)})") from None


def check_output(output: str) -> Path:
    """The path of ``-o FILE``, or a UserError naming it if it is a folder or its folder does not exist."""
    path = Path(output)
    if path.is_dir():
        raise UserError(f"-o {output}: is a folder; expected a file name")
    if not path.parent.is_dir():
        raise UserError(f"-o {output}: no such folder {path.parent}; create it first")
    return path


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return first_line(exc)
