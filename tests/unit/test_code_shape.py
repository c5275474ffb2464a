"""The shape a newcomer can change safely holds itself: no module over 600 lines in plugins/ and
include/, no function over 80 lines in the decision modules, no block of six or more lines written
twice in plugins/.

Each rule has an allow-list of today's exceptions, each with its reason and size when it was listed.
An entry that is no longer needed fails the test as well, so the lists only shrink: whoever splits
a module, shortens a function or removes a repeat deletes its entry in the same change.
"""

from __future__ import annotations

import ast
import hashlib
import io
import itertools
import re
import tokenize
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
DECISIONS = PLUGINS / "atlassian_cleanup" / "decisions"
MODULE_ROOTS = (PLUGINS, REPO / "include")

MAX_MODULE_LINES = 600
MAX_DECISION_FUNCTION_LINES = 80
MIN_REPEATED_LINES = 6
# A run of lines found in more places than this is an idiom of the language or of the codebase
# (the same test for an empty frame, say), not a piece of logic someone copied.
MAX_PLACES_OF_A_REPEAT = 8

OVERSIZED_MODULES: dict[str, str] = {}

LONG_DECISION_FUNCTIONS: dict[str, str] = {}

REPEATED_BLOCKS: dict[tuple[str, str], str] = {}


def _python_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def _stale(allowed: dict, offenders: dict) -> list:
    return sorted(key for key in allowed if key not in offenders)


# -- module size ----------------------------------------------------------------------------------


def oversized_modules() -> dict[str, int]:
    sizes = {
        path.relative_to(REPO).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in _python_files(*MODULE_ROOTS)
    }
    return {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES}


def test_no_module_is_over_600_lines_unless_listed():
    offenders = oversized_modules()
    assert {path: lines for path, lines in offenders.items() if path not in OVERSIZED_MODULES} == {}


def test_every_listed_oversized_module_still_needs_its_exemption():
    assert _stale(OVERSIZED_MODULES, oversized_modules()) == [], "delete these entries: they now fit"


# -- function size in the decisions ---------------------------------------------------------------


def _functions(
    node: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def long_decision_functions(folder: Path = DECISIONS, base: Path = REPO) -> dict[str, int]:
    lengths: dict[str, int] = {}
    for path in _python_files(folder):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, function in _functions(tree):
            # From the def line to the last line of the body: decorators are not the function's work.
            lines = (function.end_lineno or function.lineno) - function.lineno + 1
            if lines > MAX_DECISION_FUNCTION_LINES:
                lengths[f"{path.relative_to(base).as_posix()}::{name}"] = lines
    return lengths


def test_no_decision_function_is_over_80_lines_unless_listed():
    offenders = long_decision_functions()
    assert {name: lines for name, lines in offenders.items() if name not in LONG_DECISION_FUNCTIONS} == {}


def test_every_listed_long_function_still_needs_its_exemption():
    assert _stale(LONG_DECISION_FUNCTIONS, long_decision_functions()) == [], "delete these entries"


# -- repeated blocks ------------------------------------------------------------------------------

_UNCOUNTED_TOKENS = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}
# Lines of brackets and separators only, such as the `)` closing a call, say nothing on their own.
_PUNCTUATION_ONLY = re.compile(r"^[\s()\[\]{},:.]*$")


def _boilerplate_lines(tree: ast.Module) -> set[int]:
    """Imports, docstrings and signatures: repeating them is how Python is written, not copied logic.

    A signature shared by two functions (the same keyword arguments of two hook methods) is their
    common interface; what the functions do is in their bodies, which are counted.
    """
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines.update(range(node.lineno, node.body[0].lineno))
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def significant_lines(source: str) -> list[tuple[int, str]]:
    """(line number, the line's tokens joined by one space) for each line of code that counts.

    Tokens rather than text, so that white space, line wrapping inside a line and comments do not
    hide a repeat.
    """
    skipped = _boilerplate_lines(ast.parse(source))
    tokens: dict[int, list[str]] = defaultdict(list)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _UNCOUNTED_TOKENS:
            tokens[token.start[0]].append(token.string)
    return [
        (number, " ".join(tokens[number]))
        for number in sorted(tokens)
        if number not in skipped and not _PUNCTUATION_ONLY.match(" ".join(tokens[number]))
    ]


Place = tuple[str, int, int]


def repeated_blocks(root: Path, base: Path = REPO) -> dict[tuple[str, str], list[tuple[Place, Place]]]:
    """Every two places in root's Python files that share MIN_REPEATED_LINES significant lines in a row,
    grouped by the pair of files (a file paired with itself for a repeat inside one module)."""
    places: dict[str, list[Place]] = defaultdict(list)
    for path in _python_files(root):
        lines = significant_lines(path.read_text(encoding="utf-8"))
        for start in range(len(lines) - MIN_REPEATED_LINES + 1):
            window = lines[start : start + MIN_REPEATED_LINES]
            digest = hashlib.sha256("\n".join(text for _, text in window).encode()).hexdigest()
            places[digest].append((path.relative_to(base).as_posix(), window[0][0], window[-1][0]))
    pairs: dict[tuple[str, str], list[tuple[Place, Place]]] = defaultdict(list)
    for where in places.values():
        if not 2 <= len(where) <= MAX_PLACES_OF_A_REPEAT:
            continue
        for first, second in itertools.combinations(where, 2):
            overlapping = first[0] == second[0] and first[1] <= second[2] and second[1] <= first[2]
            if not overlapping:
                key = (first[0], second[0]) if first[0] <= second[0] else (second[0], first[0])
                pairs[key].append((first, second))
    return dict(pairs)


def test_no_block_of_six_lines_is_repeated_in_plugins_unless_listed():
    found = repeated_blocks(PLUGINS)
    unlisted = {pair: blocks[:3] for pair, blocks in found.items() if pair not in REPEATED_BLOCKS}
    assert unlisted == {}, "write it once and call it from both places (places as (file, first, last))"


def test_every_listed_repeat_still_needs_its_exemption():
    assert _stale(REPEATED_BLOCKS, repeated_blocks(PLUGINS)) == [], "delete these entries"


# -- the detectors themselves ---------------------------------------------------------------------

_BODY = "".join(f"    total = total + {n} * weight  # step {n}\n" for n in range(6))


def _write(root: Path, name: str, source: str) -> None:
    (root / name).write_text(source, encoding="utf-8")


def test_a_block_repeated_with_other_comments_and_spacing_is_found(tmp_path):
    _write(tmp_path, "a.py", f"def a(weight):\n    total = 0\n{_BODY}    return total\n")
    respaced = _BODY.replace(" = ", "=").replace("# step", "# another note on step")
    _write(tmp_path, "b.py", f"def b(weight, extra):\n    total = 1\n{respaced}    return -total\n")

    found = repeated_blocks(tmp_path, base=tmp_path)

    assert list(found) == [("a.py", "b.py")]
    assert found["a.py", "b.py"][0] == (("a.py", 3, 8), ("b.py", 3, 8))


def test_imports_docstrings_signatures_and_short_repeats_are_not_counted(tmp_path):
    docstring = '"""Doc\n\nstring\n\nof\nsix lines."""\n'
    head = docstring + "".join(f"import {name}\n" for name in ("os", "re", "io", "abc", "ast", "sys"))
    signature = "def f(\n    a,\n    b,\n    c,\n    d,\n    e,\n    g,\n):\n"
    five = "".join(f"    x{n} = a + {n}\n" for n in range(5))
    _write(tmp_path, "a.py", f"{head}{signature}{five}    return a\n")
    _write(tmp_path, "b.py", f"{head}{signature}{five}    return b\n")

    assert repeated_blocks(tmp_path, base=tmp_path) == {}


def test_long_functions_are_measured_by_qualified_name(tmp_path):
    eighty_lines = "".join(f"        x = {n}\n" for n in range(80))
    _write(
        tmp_path,
        "rules.py",
        f"class Rules:\n    def long(self):\n{eighty_lines}\n    def short(self):\n        return 1\n",
    )

    assert long_decision_functions(tmp_path, base=tmp_path) == {"rules.py::Rules.long": 81}
