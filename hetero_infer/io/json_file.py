"""Reading the project's JSON documents (layer tables, interference models) with bounds.

One reader, so every JSON file a user can hand over is refused the same way: too large, a
directory, missing, truncated, not JSON or nested past Python's recursion limit, each as a
:class:`~hetero_infer.errors.ModelError` naming the file.
"""

import json

from hetero_infer.errors import ModelError


def read_json(path: str, what: str, *, max_bytes: int):
    """The parsed document of the JSON file ``path`` (``what`` names it in errors).

    :raises ModelError: the file is missing, a directory, larger than ``max_bytes``, not UTF-8
        JSON, or nested too deeply to parse.
    """
    try:
        with open(path, 'rb') as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ModelError('%s %s is larger than %d bytes; refused' % (what, path, max_bytes))
        return json.loads(data.decode('utf-8'))
    except ModelError:
        raise
    except FileNotFoundError:
        raise ModelError('%s file not found: %s' % (what, path)) from None
    except IsADirectoryError:
        raise ModelError('%s %s is a directory' % (what, path)) from None
    except RecursionError:
        raise ModelError('cannot read %s %s: nested too deeply' % (what, path)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError('cannot read %s %s (truncated or not JSON): %s'
                         % (what, path, exc)) from None
