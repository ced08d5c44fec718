"""Every statement lives in a repository: no other module of src/clarion runs SQL through a session or
builds a writing statement. db.py (the session scope, its ping and the dialect's INSERT helpers) is
the one exception. And one repository writes each table. Read with `ast`, so a lazy import or a call
inside a nested function is seen too."""

from __future__ import annotations

import ast
from pathlib import Path

import clarion

ROOT = Path(clarion.__file__).parent

# What a session (or a connection) runs or writes through the unit of work.
SESSION_METHODS = {
    "execute",
    "scalar",
    "scalars",
    "stream",
    "stream_scalars",
    "get",
    "add",
    "add_all",
    "merge",
    "delete",
    "flush",
    "refresh",
}
RECEIVERS = {"session", "conn", "connection"}
# Statements that write, and raw SQL text.
WRITING = {"insert", "update", "delete", "text"}
# audience/service.py compiles an audience into a SELECT that the ledger's INSERT … SELECT embeds and
# AudienceRepository runs: it builds statements and runs none.
QUERY_BUILDERS = {Path("audience/service.py")}
# Statement builders and helpers, with the position of the table they write.
WRITERS = {"update": 0, "insert": 0, "delete": 0, "insert_ignore": 1, "insert_ignore_from": 1}


def _modules() -> list[Path]:
    paths = sorted(ROOT.rglob("*.py"))
    return [
        path
        for path in paths
        if path.name != "repository.py"
        and path.relative_to(ROOT) != Path("db.py")
        and "migrations" not in path.relative_to(ROOT).parts
    ]


def _receiver(node: ast.expr) -> str | None:
    """`session` for `session.execute`, `self.session.execute` and `rt.session.execute`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _session_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = _receiver(node.func.value)
        if node.func.attr in SESSION_METHODS and receiver in RECEIVERS:
            found.append((node.lineno, f"{receiver}.{node.func.attr}(…)"))
    return sorted(found)


def _statement_imports(tree: ast.AST, allowed_select: bool) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    forbidden = WRITING if allowed_select else WRITING | {"select"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found.extend(
                (node.lineno, f"from {node.module} import {alias.name}")
                for alias in node.names
                if alias.name in forbidden
            )
    return found


def _violations() -> list[str]:
    violations: list[str] = []
    for path in _modules():
        relative = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(), str(path))
        found = _session_calls(tree) + _statement_imports(tree, relative in QUERY_BUILDERS)
        violations.extend(f"src/clarion/{relative}:{line}: {what}" for line, what in found)
    return violations


def _table_aliases(tree: ast.Module) -> dict[str, str]:
    """`_deliveries: Table = Delivery.__table__` -> {"_deliveries": "Delivery"}."""
    aliases: dict[str, str] = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(target, ast.Name) and value is not None and (model := _model(value, {})):
            aliases[target.id] = model
    return aliases


def _model(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The model a statement's table argument names: `Campaign`, `Tag.__table__` or an alias of one."""
    if isinstance(node, ast.Attribute) and node.attr == "__table__" and isinstance(node.value, ast.Name):
        return node.value.id
    if isinstance(node, ast.Name) and node.id[:1].isupper():
        return node.id
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    return None


def _written_tables(source: str) -> set[str]:
    tree = ast.parse(source)
    aliases = _table_aliases(tree)
    written: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in WRITERS:
            position = WRITERS[node.func.id]
            if len(node.args) > position and (model := _model(node.args[position], aliases)):
                written.add(model)
    return written


def _writers() -> dict[str, list[str]]:
    """Each model written by UPDATE/INSERT/DELETE statements, with the repositories that write it."""
    writers: dict[str, list[str]] = {}
    for path in sorted(ROOT.rglob("repository.py")):
        for model in _written_tables(path.read_text()):
            writers.setdefault(model, []).append(str(path.relative_to(ROOT)))
    return writers


def test_one_repository_writes_each_table() -> None:
    writers = _writers()
    shared = {model: files for model, files in writers.items() if len(files) > 1}
    assert shared == {}
    assert writers["Campaign"] == ["campaign/repository.py"]
    assert writers["Delivery"] == ["delivery/repository.py"]
    assert writers["Subscriber"] == ["subscriber/repository.py"]


def test_the_writer_check_resolves_table_aliases() -> None:
    sample = (
        "_rows: Table = Delivery.__table__\n"
        "async def f(session):\n"
        "    await session.execute(update(_rows).values(a=1))\n"
        "    await insert_ignore(session, Tag.__table__, [])\n"
        "    await session.execute(delete(BatchReport))\n"
        "    await session.execute(select(Campaign))\n"
    )
    assert _written_tables(sample) == {"Delivery", "Tag", "BatchReport"}


def test_no_module_outside_a_repository_runs_sql() -> None:
    assert _violations() == []


def test_the_check_sees_what_it_forbids() -> None:
    sample = ast.parse(
        "from sqlalchemy import select, update\n"
        "async def f(self, session):\n"
        "    await session.execute(select(1))\n"
        "    session.add(object())\n"
        "    await self.session.get(object, 1)\n"
        "    await session.get_bind()\n"
        "    await queue.get()\n"
    )
    assert _session_calls(sample) == [
        (3, "session.execute(…)"),
        (4, "session.add(…)"),
        (5, "session.get(…)"),
    ]
    assert _statement_imports(sample, allowed_select=False) == [
        (1, "from sqlalchemy import select"),
        (1, "from sqlalchemy import update"),
    ]
    assert _statement_imports(sample, allowed_select=True) == [(1, "from sqlalchemy import update")]


def test_the_check_reads_every_module_but_repositories_and_the_session_scope() -> None:
    checked = {path.relative_to(ROOT) for path in _modules()}
    assert Path("delivery/service.py") in checked
    assert Path("audience/service.py") in checked
    assert Path("app.py") in checked
    assert Path("delivery/repository.py") not in checked
    assert Path("db.py") not in checked


def _columns() -> set[str]:
    """Every mapped column's attribute name, over all models."""
    from clarion.models import Base

    return {prop.key for mapper in Base.registry.mappers for prop in mapper.column_attrs}


def _column_assignments(tree: ast.AST, columns: set[str]) -> list[tuple[int, str]]:
    """`row.column = …` (or `+=`, or inside a tuple) on anything but `self`: a write to a loaded row
    that the unit of work would flush behind the repository's back. Judged by the attribute's name,
    since types are not known here: a non-model object with an attribute named like a column would be
    flagged too (none is today; rename it, or give the write to a repository)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                if (
                    isinstance(element, ast.Attribute)
                    and element.attr in columns
                    and not (isinstance(element.value, ast.Name) and element.value.id in {"self", "cls"})
                ):
                    found.append((node.lineno, ast.unparse(element)))
    return sorted(found)


def test_no_module_outside_a_repository_assigns_a_column() -> None:
    """One writer per table holds for loaded rows too: services call repository methods, which write
    with UPDATE statements (the loaded object shows the new values), instead of setting attributes."""
    columns = _columns()
    violations = [
        f"src/clarion/{path.relative_to(ROOT)}:{line}: {what} = …"
        for path in _modules()
        for line, what in _column_assignments(ast.parse(path.read_text()), columns)
    ]
    assert violations == []


def test_the_assignment_check_sees_what_it_forbids() -> None:
    sample = ast.parse(
        "def f(self, subscriber, app, report):\n"
        "    subscriber.active = False\n"
        "    subscriber.p256dh, subscriber.auth = keys\n"
        "    app.plan: str = 'free'\n"
        "    report.checked += 1\n"
        "    self.active = True\n"
        "    subscriber.seen = 1\n"
    )
    assert _column_assignments(sample, {"active", "p256dh", "auth", "plan"}) == [
        (2, "subscriber.active"),
        (3, "subscriber.auth"),
        (3, "subscriber.p256dh"),
        (4, "app.plan"),
    ]
