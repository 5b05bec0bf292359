"""Validating a parsed file against its declared schema, with one-line errors.

Each file kind declares its structure once, as a JSON Schema (draft 7) beside the code that
reads it (``PLATFORM_SCHEMA`` in :mod:`platform`, ``SCENARIOS_SCHEMA`` in :mod:`scenarios`):
types, ranges, required and allowed keys. Adding a key is adding one line there. This module
checks a document against such a schema with the ``jsonschema`` library and turns the first
violation into a :class:`~hetero_infer.errors.ConfigError` that names the file, the key path and
the bad value, and, for an unknown key, the nearest allowed one (``difflib``). Checks across
keys (a power mode that must exist, peak above achievable bandwidth) stay in the readers.

Before the schema, every number is checked finite (``.inf`` and ``.nan`` are valid YAML and pass
JSON Schema's range keywords, NaN compares false with every bound).
"""

import difflib
import math
from typing import Any, Iterator, List, Mapping, Sequence, Tuple

from hetero_infer.errors import ConfigError


def key_path(parts: Sequence[Any]) -> str:
    """``['scenarios', 2, 'load']`` -> ``scenarios[2].load``."""
    out = ''
    for p in parts:
        if isinstance(p, int) and not isinstance(p, bool):
            out += '[%d]' % p
        else:
            out += ('.' if out else '') + str(p)
    return out or '<top>'


def _numbers(doc: Any, path: Tuple[Any, ...] = ()) -> Iterator[Tuple[Tuple[Any, ...], float]]:
    stack: List[Tuple[Tuple[Any, ...], Any]] = [(path, doc)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, float):
            yield p, v
        elif isinstance(v, Mapping):
            stack.extend((p + (k,), x) for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend((p + (i,), x) for i, x in enumerate(v))


def suggest(word: Any, known: Sequence[str]) -> str:
    """``' (did you mean 'x'?)'`` for the closest known word, or ``''``."""
    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1, cutoff=0.6)
    return ' (did you mean %r?)' % close[0] if close else ''


def _message(err) -> str:
    path = key_path(list(err.absolute_path))
    kind = err.validator
    schema = err.schema
    value = err.instance
    if kind == 'additionalProperties':
        allowed = sorted(schema.get('properties', {}))
        extra = sorted((k for k in value if k not in schema.get('properties', {})), key=str)
        if allowed:
            return ('%s: unknown key %r%s; allowed: %s'
                    % (path, extra[0], suggest(extra[0], allowed), ', '.join(allowed)))
        return '%s: unexpected key %r' % (path, extra[0])
    if kind == 'required':
        missing = [k for k in err.validator_value if k not in value]
        return '%s: missing required key %r' % (path, missing[0] if missing else '?')
    if kind == 'type':
        want = err.validator_value
        want = ' or '.join(want) if isinstance(want, list) else want
        article = 'an' if want[0] in 'aeiou' else 'a'
        return '%s must be %s %s, got %r' % (path, article, want, value)
    if kind in ('minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'):
        lo = schema.get('minimum', schema.get('exclusiveMinimum'))
        hi = schema.get('maximum', schema.get('exclusiveMaximum'))
        return '%s = %r is out of range %s%s, %s%s' % (
            path, value, '(' if 'exclusiveMinimum' in schema else '[',
            '-inf' if lo is None else lo, 'inf' if hi is None else hi,
            ')' if 'exclusiveMaximum' in schema else ']')
    if kind == 'enum':
        known = [str(v) for v in err.validator_value]
        return '%s = %r is not one of %s%s' % (path, value, ', '.join(known),
                                              suggest(value, known))
    if kind in ('minItems', 'minProperties'):
        return '%s must not be empty' % path
    if kind == 'maxItems':
        return '%s has %d items, at most %d allowed' % (path, len(value), err.validator_value)
    if kind == 'uniqueItems':
        seen = set()
        for v in value:
            key = repr(v)
            if key in seen:
                return '%s: %r appears twice' % (path, v)
            seen.add(key)
    if kind == 'propertyNames':
        return '%s: key %r must be a string' % (path, value)
    if kind in ('minLength', 'maxLength', 'pattern'):
        return '%s = %r: %s' % (path, value, err.message)
    return '%s: %s' % (path, ' '.join(err.message.split())[:200])


def validate(doc: Any, schema: Mapping[str, Any], where: str) -> None:
    """Check ``doc`` against ``schema``.

    :raises ConfigError: ``'<where>: <key path> ... <bad value>'`` for the first violation.
    """
    for path, x in _numbers(doc):
        if not math.isfinite(x):
            raise ConfigError('%s: %s = %r is not a finite number' % (where, key_path(path), x))
    import jsonschema
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(doc),
                    key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
    if errors:
        # A misspelt key is both unknown and (its right name) missing: name the misspelling.
        unknown = [e for e in errors if e.validator == 'additionalProperties']
        best = unknown[0] if unknown else jsonschema.exceptions.best_match(errors)
        raise ConfigError('%s: %s' % (where, _message(best)))


def number(lo=None, hi=None, *, lo_open: bool = False, integer: bool = False) -> dict:
    """A schema for a number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    out = {'type': 'integer' if integer else 'number'}
    if lo is not None:
        out['exclusiveMinimum' if lo_open else 'minimum'] = lo
    if hi is not None:
        out['maximum'] = hi
    return out


def strict(properties: Mapping[str, Any], required: Sequence[str] = ()) -> dict:
    """A mapping with exactly these keys allowed (``required`` among them)."""
    return {'type': 'object', 'properties': dict(properties), 'required': list(required),
            'additionalProperties': False}
