"""No module of the package imports another module's private name (``from m import _x``): a
name used across modules is public, named and documented where it is defined."""

import ast
import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'hetero_infer')


def _private_imports():
    found = []
    for folder, _dirs, files in os.walk(ROOT):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0 \
                        and (node.module or '').startswith('hetero_infer'):
                    for alias in node.names:
                        if alias.name.startswith('_') and not alias.name.startswith('__'):
                            found.append('%s:%d imports %s from %s' % (
                                os.path.relpath(path, ROOT), node.lineno, alias.name,
                                node.module))
    return found


def test_no_module_imports_a_private_name_of_another():
    assert _private_imports() == []


def test_list_entries_strips_and_drops_blanks():
    from hetero_infer.serving.config import list_entries
    assert list_entries(['']) == ()
    assert list_entries([' cam ', '', 'mic', '  ']) == ('cam', 'mic')
