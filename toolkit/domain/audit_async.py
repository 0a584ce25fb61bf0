"""Find blocking calls inside async functions of a Django code base, by reading its syntax tree.

Pure: takes source text and a file name, returns findings (id ``async.blocking_call``). Nothing is
imported or run. Names are resolved through the file's imports (``from time import sleep``,
``import requests as r``), and a receiver's kind is inferred from what it was assigned from
(``s = requests.Session()``, ``qs = Article.objects.filter(...)``), so ``d.get(k)`` on a dict is
not mistaken for ``cache.get(k)``. Only the async function's own body is read: a nested sync
``def`` or ``lambda`` runs wherever it is called (usually in ``sync_to_async``/``asyncio.to_thread``),
and a function passed by reference to those is not a call.

>>> src = "import time\\nasync def view(request):\\n    time.sleep(1)\\n"
>>> [(f.evidence["line"], f.evidence["call"]) for f in analyse(src, "views.py")]
[(3, 'time.sleep')]
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from toolkit.domain.findings import Finding, Severity

FINDING_ID = "async.blocking_call"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_THREAD = "wrap it: await asyncio.to_thread(fn, ...) or await sync_to_async(fn)(...)"
_HTTP = f"use an async HTTP client, or {_THREAD}"

# Module-level functions that block, by resolved name (exact, or a module prefix ending in ".").
_FUNCTIONS: dict[str, str] = {
    "time.sleep": "use await asyncio.sleep(...)",
    "requests.": _HTTP,
    "urllib.request.": _HTTP,
    "socket.create_connection": f"use await asyncio.open_connection(...), or {_THREAD}",
    "socket.getaddrinfo": "use await loop.getaddrinfo(...)",
    "socket.gethostbyname": "use await loop.getaddrinfo(...)",
    "subprocess.": "use await asyncio.create_subprocess_exec(...)",
    "os.system": "use await asyncio.create_subprocess_shell(...)",
    "os.popen": "use await asyncio.create_subprocess_shell(...)",
    "builtins.open": _THREAD,
    "shutil.": _THREAD,
    "psycopg.connect": f"use await psycopg.AsyncConnection.connect(...), or {_THREAD}",
    "psycopg2.connect": f"use an async driver (psycopg.AsyncConnection), or {_THREAD}",
}
# Calls whose result is an object of a known kind: its methods are judged by _METHODS.
_CONSTRUCTORS: dict[str, str] = {
    "requests.Session": "requests.Session",
    "requests.session": "requests.Session",
    "socket.socket": "socket",
    "socket.create_connection": "socket",
    "http.client.HTTPConnection": "http.client",
    "http.client.HTTPSConnection": "http.client",
    "psycopg.connect": "psycopg.Connection",
    "psycopg2.connect": "psycopg.Connection",
    "redis.Redis": "redis.Redis",
    "redis.StrictRedis": "redis.Redis",
    "redis.from_url": "redis.Redis",
    "redis.Redis.from_url": "redis.Redis",
    "redis.StrictRedis.from_url": "redis.Redis",
    "pathlib.Path": "Path",
    "pathlib.PurePath": "PurePath",
}
_ALL = frozenset({"*"})
_PATH_IO = _names(
    "read_text write_text read_bytes write_bytes open unlink mkdir touch rename replace rmdir iterdir"
)
_METHODS: dict[str, tuple[frozenset[str], str]] = {
    "requests.Session": (_names("get post put patch delete head options request send"), _HTTP),
    "socket": (
        _names("connect connect_ex accept recv recv_into recvfrom send sendall sendto makefile"),
        f"use asyncio streams (await asyncio.open_connection(...)), or {_THREAD}",
    ),
    "http.client": (_names("connect request getresponse send"), _HTTP),
    "psycopg.Connection": (
        _names("execute commit rollback"),
        f"use psycopg.AsyncConnection, or {_THREAD}",
    ),
    "psycopg.Cursor": (
        _names("execute executemany fetchone fetchmany fetchall callproc"),
        f"use psycopg.AsyncConnection, or {_THREAD}",
    ),
    "redis.Redis": (_ALL, f"use redis.asyncio.Redis (await client.{{m}}(...)), or {_THREAD}"),
    "Path": (_PATH_IO, _THREAD),
    "cache": (
        _names("get set add delete get_or_set get_many set_many delete_many clear incr decr touch has_key"),
        "use the async variant: await cache.a{m}(...)",
    ),
    "QuerySet": (
        _names(
            "get create get_or_create update_or_create bulk_create bulk_update count exists first last "
            "update delete aggregate in_bulk earliest latest iterator contains explain"
        ),
        "use the async variant: await queryset.a{m}(...) (or sync_to_async)",
    ),
    "Model": (
        _names("save delete refresh_from_db"),
        "use the async variant: await obj.a{m}(...) (or sync_to_async)",
    ),
}
_LAZY = _names(
    "all filter exclude order_by select_related prefetch_related values values_list only defer annotate "
    "alias distinct using none select_for_update reverse extra union intersection difference"
)
_INSTANCE = _names("get create first last earliest latest")
_AINSTANCE = _names("aget acreate afirst alast aearliest alatest")
_EVALUATE = frozenset({"builtins.list", "builtins.tuple", "builtins.set", "builtins.len", "builtins.sorted"})
_PATH_ONLY = frozenset({"read_text", "write_text", "read_bytes", "write_bytes"})


@dataclass(frozen=True)
class _Hit:
    line: int
    call: str
    remedy: str


class _Module:
    """What the whole file says about names: imports, model classes, module-level objects."""

    def __init__(self, tree: ast.Module) -> None:
        self.aliases: dict[str, str] = {}
        self.kinds: dict[str, str | None] = {}
        self.models: set[str] = set()
        self.defined: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{module}.{a.name}" if node.level == 0 else a.name
                    if module.split(".")[-1] == "models" and a.name[:1].isupper():
                        self.models.add(a.asname or a.name)
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self.defined.add(stmt.name)
                self.aliases.pop(stmt.name, None)
            elif isinstance(stmt, ast.ClassDef):
                self.defined.add(stmt.name)
                if any(ast.unparse(b).split(".")[-1].endswith("Model") for b in stmt.bases):
                    self.models.add(stmt.name)
        self.kinds = _assigned_kinds(tree.body, self, {})


def _own_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of these statements, not entering nested functions, lambdas or classes."""
    nested = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
    stack: list[ast.AST] = [n for n in reversed(body) if not isinstance(n, nested)]
    while stack:
        node = stack.pop()
        yield node
        stack += [c for c in reversed(list(ast.iter_child_nodes(node))) if not isinstance(c, nested)]


def _targets(node: ast.AST) -> list[tuple[ast.expr, ast.expr | None]]:
    """(target, value) pairs a statement binds."""
    if isinstance(node, ast.Assign):
        return [(t, node.value) for t in node.targets]
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return [(node.target, node.value)]
    if isinstance(node, ast.With | ast.AsyncWith):
        return [(i.optional_vars, i.context_expr) for i in node.items if i.optional_vars is not None]
    if isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
        return [(node.target, None)]
    if isinstance(node, ast.NamedExpr):
        return [(node.target, node.value)]
    return []


def _assigned_kinds(
    body: list[ast.stmt], module: _Module, outer: dict[str, str | None]
) -> dict[str, str | None]:
    """Name -> kind of what it was last bound to in this scope (None: bound to something unknown)."""
    kinds: dict[str, str | None] = {}
    scope = _Scope(module, {**outer})
    for node in _own_nodes(body):
        for target, value in _targets(node):
            if isinstance(target, ast.Name):
                kind = scope.kind(value) if value is not None else None
                kinds[target.id] = scope.kinds[target.id] = kind
            else:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        kinds[sub.id] = scope.kinds[sub.id] = None
    return kinds


class _Scope:
    """Name resolution inside one function: locals first, then the module."""

    def __init__(self, module: _Module, kinds: dict[str, str | None]) -> None:
        self.module = module
        self.kinds = kinds

    def qualname(self, expr: ast.expr) -> str | None:
        """The dotted name a call target resolves to through imports, or None if it is local."""
        if isinstance(expr, ast.Attribute):
            base = self.qualname(expr.value)
            return f"{base}.{expr.attr}" if base else None
        if not isinstance(expr, ast.Name) or expr.id in self.kinds:
            return None
        if expr.id in self.module.aliases:
            return self.module.aliases[expr.id]
        if expr.id in self.module.defined or expr.id in self.module.kinds:
            return None
        return f"builtins.{expr.id}"

    def kind(self, expr: ast.expr | None) -> str | None:
        """What kind of object an expression evaluates to, when it can be told."""
        if isinstance(expr, ast.Await):
            inner = expr.value
            func = inner.func if isinstance(inner, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr in _AINSTANCE:
                return "Model" if self.kind(func.value) == "QuerySet" else None
            return None
        if isinstance(expr, ast.Name):
            if expr.id in self.kinds:
                return self.kinds[expr.id]
            if expr.id in self.module.models:
                return "ModelClass"
            if self.qualname(expr) == "django.core.cache.cache":
                return "cache"
            return self.module.kinds.get(expr.id)
        if isinstance(expr, ast.Attribute):
            if expr.attr in {"objects", "_default_manager"}:
                return "QuerySet"
            if expr.attr == "parent" and self.kind(expr.value) == "Path":
                return "Path"
            return None
        if isinstance(expr, ast.Subscript):
            return "cache" if self.qualname(expr.value) == "django.core.cache.caches" else None
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            return "Path" if self.kind(expr.left) == "Path" else None
        if not isinstance(expr, ast.Call):
            return None
        name = self.qualname(expr.func)
        if name in _CONSTRUCTORS:
            return _CONSTRUCTORS[name]
        if name and name.rsplit(".", 1)[-1] == "Path" and name.startswith("pathlib"):
            return "Path"
        func = expr.func
        if isinstance(func, ast.Name) and func.id in self.module.models and func.id not in self.kinds:
            return "Model"
        if isinstance(func, ast.Attribute):
            receiver = self.kind(func.value)
            if receiver == "QuerySet" and func.attr in _LAZY:
                return "QuerySet"
            if receiver == "QuerySet" and func.attr in _INSTANCE:
                return "Model"
            if receiver == "psycopg.Connection" and func.attr == "cursor":
                return "psycopg.Cursor"
            if receiver == "redis.Redis" and func.attr == "pipeline":
                return "redis.Redis"
            if receiver == "Path" and func.attr in {"joinpath", "with_name", "with_suffix", "resolve"}:
                return "Path"
        return None

    def blocking(self, call: ast.Call) -> _Hit | None:
        """The finding for one call, if it blocks."""
        name = self.qualname(call.func)
        if name:
            if name in _EVALUATE and call.args and self.kind(call.args[0]) == "QuerySet":
                short = name.removeprefix("builtins.")
                return _Hit(call.lineno, f"{short}(QuerySet)", "use [x async for x in qs] (or sync_to_async)")
            for pattern, remedy in _FUNCTIONS.items():
                if name == pattern or (pattern.endswith(".") and name.startswith(pattern)):
                    if name.startswith("requests.") and name.split(".")[1][:1].isupper():
                        return None  # requests.Session(), requests.Request(...): constructors
                    return _Hit(call.lineno, name.removeprefix("builtins."), remedy)
        if not isinstance(call.func, ast.Attribute):
            return None
        method = call.func.attr
        receiver = self.kind(call.func.value)
        if receiver is None:
            if method in _PATH_ONLY:  # names only pathlib uses: the receiver is a path
                return _Hit(call.lineno, f"Path.{method}", _THREAD)
            return None
        if receiver == "ModelClass":
            return None
        rule = _METHODS.get(receiver)
        if rule is None or (method not in rule[0] and rule[0] is not _ALL):
            return None
        return _Hit(call.lineno, f"{receiver}.{method}", rule[1].replace("{m}", method))

    def iteration(self, node: ast.For | ast.comprehension, line: int) -> _Hit | None:
        """A sync loop over a QuerySet evaluates it on the event loop."""
        if self.kind(node.iter) == "QuerySet":
            return _Hit(line, "iteration(QuerySet)", "use async for x in qs (or sync_to_async(list)(qs))")
        return None


def _function_hits(func: ast.AsyncFunctionDef, module: _Module) -> list[_Hit]:
    args = func.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    outer: dict[str, str | None] = {a.arg: None for a in params if a is not None}
    scope = _Scope(module, {**outer, **_assigned_kinds(func.body, module, outer)})
    hits: list[_Hit] = []
    for node in _own_nodes(func.body):
        hit: _Hit | None = None
        if isinstance(node, ast.Call):
            hit = scope.blocking(node)
        elif isinstance(node, ast.For) or (isinstance(node, ast.comprehension) and not node.is_async):
            hit = scope.iteration(node, node.iter.lineno)
        if hit is not None:
            hits.append(hit)
    return hits


def analyse(source: str, filename: str) -> list[Finding]:
    """Findings for every blocking call made directly in an async function; raises SyntaxError."""
    tree = ast.parse(source, filename=filename)
    module = _Module(tree)
    findings: dict[tuple[int, str], Finding] = {}
    for func in ast.walk(tree):
        if not isinstance(func, ast.AsyncFunctionDef):
            continue
        for hit in _function_hits(func, module):
            findings.setdefault(
                (hit.line, hit.call),
                Finding(
                    id=FINDING_ID,
                    severity=Severity.WARNING,
                    target=f"{filename}:{hit.line}",
                    summary=f"async def {func.name} calls {hit.call}, which blocks the event loop",
                    evidence={"file": filename, "line": hit.line, "function": func.name, "call": hit.call},
                    remedy=hit.remedy,
                ),
            )
    return sorted(findings.values(), key=lambda f: (f.evidence["line"], f.evidence["call"]))
