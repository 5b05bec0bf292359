"""Reading the project's YAML files (platforms, scenarios, parameters): safe, bounded, strict.

Every loader of the project goes through :func:`read_yaml` (files) or :func:`parse_yaml` (text),
which differ from ``yaml.safe_load`` in four ways:

- **Bounded size:** a file larger than :data:`MAX_YAML_BYTES` is refused before it is parsed.
- **Bounded aliases:** anchors and aliases (``&dla`` / ``*dla``, which the platform files use to
  share a processor's description) are expanded, but the document may not grow past
  :data:`MAX_YAML_NODES` nodes once expanded, nor nest deeper than :data:`MAX_YAML_DEPTH`
  levels; the "billion laughs" file (a few hundred bytes that expand to gigabytes) and recursive
  aliases are refused before anything is built.
- **Duplicate keys refused:** ``yaml.safe_load`` keeps the last of two equal keys silently.
- **YAML 1.2 numbers:** ``5.5e3`` and ``1e-3`` are numbers (YAML 1.1, PyYAML's default, reads
  them as strings), ``010`` is ten (not octal eight) and ``1:20`` is a string (not 80).

Only the standard YAML tags are constructed (``SafeLoader``): ``!!python/...`` tags are errors.
"""

import re
from typing import Any

from hetero_infer.errors import ConfigError

#: Largest YAML file read (the project's largest, config/scenarios.yaml, is under 10 KB).
MAX_YAML_BYTES = 1 << 20
#: Largest document once aliases are expanded, in nodes (scalars, lists and mappings).
MAX_YAML_NODES = 100000
#: Largest document once aliases are expanded, in characters of its scalars.
MAX_YAML_CHARS = 8 << 20
#: Deepest nesting of lists and mappings.
MAX_YAML_DEPTH = 64

_INT_12 = re.compile(r'^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$')
_FLOAT_12 = re.compile(r'^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?'
                       r'|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$')
_INT_TAG = 'tag:yaml.org,2002:int'
_FLOAT_TAG = 'tag:yaml.org,2002:float'

_LOADER = None


def _loader_class():
    """A ``yaml.SafeLoader`` subclass with the rules above (built once, on first use)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml
    from yaml.constructor import ConstructorError

    class StrictLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            # The composer recurses once per nesting level: bound it before Python's own limit.
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise ConstructorError(None, None, 'nesting deeper than %d levels'
                                       % MAX_YAML_DEPTH, mark)
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                # Explicit keys only: a key merged in with ``<<: *anchor`` may be overridden.
                seen = {}
                for key_node, _ in node.value:
                    if key_node.tag == 'tag:yaml.org,2002:merge':
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        raise ConstructorError('while constructing a mapping', node.start_mark,
                                               'unhashable key %r' % (key,),
                                               key_node.start_mark) from None
                    if key in seen:
                        raise ConstructorError(
                            'while constructing a mapping', node.start_mark,
                            'duplicate key %r (first at line %d)'
                            % (key, seen[key].line + 1), key_node.start_mark)
                    seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_int(self, node):
            text = self.construct_scalar(node)
            if text.startswith('0o'):
                return int(text[2:], 8)
            if text.startswith('0x'):
                return int(text[2:], 16)
            return int(text, 10)

    # YAML 1.2 core schema for numbers: drop 1.1's int/float resolvers, add 1.2's.
    StrictLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in rules if tag not in (_INT_TAG, _FLOAT_TAG)]
        for first, rules in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    StrictLoader.add_implicit_resolver(_INT_TAG, _INT_12, list('-+0123456789'))
    StrictLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_12, list('-+0123456789.'))
    StrictLoader.add_constructor(_INT_TAG, StrictLoader.construct_yaml_int)
    _LOADER = StrictLoader
    return _LOADER


def _too_large(root) -> bool:
    """Whether the document, every alias expanded, has more than :data:`MAX_YAML_NODES` nodes
    or :data:`MAX_YAML_CHARS` characters of scalars (the walk stops at the first limit).

    A node reached through several aliases counts each time (that is what ``str()`` of the
    loaded value, or a walk over it, costs). A recursive alias never ends, so it hits the cap.
    """
    import yaml
    count = chars = 0
    stack = [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_YAML_NODES or chars > MAX_YAML_CHARS:
            return True
        if isinstance(node, yaml.ScalarNode):
            chars += len(node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack.append(k)
                stack.append(v)
    return False


def parse_yaml(text: str, where: str) -> Any:
    """Parsed content of YAML text; ``where`` names it (file path, flag) in error messages.

    :raises ConfigError: not valid YAML, a duplicate key, a non-standard tag, more than
        :data:`MAX_YAML_NODES` nodes once aliases are expanded or deeper than
        :data:`MAX_YAML_DEPTH` levels.
    """
    import yaml
    loader = None
    try:
        loader = _loader_class()(text)
        node = loader.get_single_node()
        if node is None:
            return None
        if _too_large(node):
            raise ConfigError('%s: the document expands to more than %d nodes or %d characters '
                              '(YAML aliases repeating large parts, or a recursive alias); '
                              'refused' % (where, MAX_YAML_NODES, MAX_YAML_CHARS))
        return loader.construct_document(node)
    except ConfigError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = ' at line %d, column %d' % (mark.line + 1, mark.column + 1) if mark else ''
        raise ConfigError('%s is not valid YAML: %s%s' % (
            where, ' '.join(str(exc.problem or exc.context).split()), at)) from None
    except yaml.YAMLError as exc:
        raise ConfigError('%s is not valid YAML: %s' % (where, ' '.join(str(exc).split()))
                          ) from None
    except (ValueError, OverflowError) as exc:  # a constructor on an odd scalar
        raise ConfigError('%s is not valid YAML: %s' % (where, exc)) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: str, what: str) -> Any:
    """Parsed content of a YAML file; ``what`` names the file's role in error messages.

    :raises ConfigError: the file is missing, unreadable, larger than :data:`MAX_YAML_BYTES`,
        not UTF-8 or not valid YAML under the rules of :func:`parse_yaml` (path in the message).
    """
    try:
        with open(path, 'rb') as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError('%s file not found: %s' % (what, path)) from None
    except IsADirectoryError:
        raise ConfigError('%s file %s is a directory' % (what, path)) from None
    except OSError as exc:
        raise ConfigError('cannot read %s file %s: %s' % (what, path, exc.strerror or exc)
                          ) from None
    if len(data) > MAX_YAML_BYTES:
        raise ConfigError('%s file %s is larger than %d bytes; refused'
                          % (what, path, MAX_YAML_BYTES))
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ConfigError('%s file %s is not UTF-8 text (byte %d)' % (what, path, exc.start)
                          ) from None
    return parse_yaml(text, '%s file %s' % (what, path))
