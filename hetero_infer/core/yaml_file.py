"""Reading the project's YAML files (platforms, scenarios, parameters) with one error style."""

from hetero_infer.errors import ConfigError


def read_yaml(path: str, what: str):
    """Parsed content of a YAML file; ``what`` names the file's role in error messages.

    :raises ConfigError: the file is missing, unreadable or not valid YAML (path in the message).
    """
    import yaml
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError('%s file not found: %s' % (what, path)) from None
    except OSError as exc:
        raise ConfigError('cannot read %s file %s: %s' % (what, path, exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError('%s file %s is not valid YAML: %s' % (what, path, exc)) from None
