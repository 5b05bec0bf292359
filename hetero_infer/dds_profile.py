"""The Fast DDS profile for camera frames (``config/fastdds_camera.xml``) and how it is applied.

Fast DDS reads an XML profile file named by an environment variable when its first participant
is created: ``FASTRTPS_DEFAULT_PROFILES_FILE`` (Fast DDS 2.x, ROS 2 Jazzy) or
``FASTDDS_DEFAULT_PROFILES_FILE`` (Fast DDS 3.x, Kilted and later). :func:`apply` sets both to
the package's profile before rclpy starts, unless the user has set either (their profile wins,
whole). Other RMWs ignore both variables (Cyclone DDS: README, "Large frames").

This module imports no ROS package: it runs before ``rclpy.init``.
"""

import os
from typing import MutableMapping, Optional

#: The variables Fast DDS 2.x and 3.x read, in that order.
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')

#: The profile's file name under the package's ``config/``.
PROFILE_FILE = 'fastdds_camera.xml'


def profile_path() -> str:
    """The installed (or source-tree) path of the package's profile.

    :raises ConfigError: the package is installed without its config files.
    """
    from hetero_infer.resources import find_resource
    return find_resource('config', PROFILE_FILE)


def user_profile(environ: Optional[MutableMapping[str, str]] = None) -> str:
    """The profile file the user chose through either variable, or ``''``."""
    env = os.environ if environ is None else environ
    for name in PROFILE_VARIABLES:
        if env.get(name):
            return env[name]
    return ''


def apply(environ: Optional[MutableMapping[str, str]] = None, choice: str = '') -> str:
    """Point both variables at the package's profile unless the user set one of them.

    Call before ``rclpy.init`` (child processes inherit the variables).

    :param choice: ``''`` (the rule above), ``'none'`` (leave the variables as they are: Fast
        DDS's defaults unless the user set one) or a profile file to use (both variables).
    :returns: the profile file in force (the user's, or the package's), ``''`` for none.
    :raises ConfigError: the chosen file does not exist (Fast DDS would only log that and go
        on with its defaults, losing large frames silently).
    """
    from hetero_infer.errors import ConfigError
    env = os.environ if environ is None else environ
    if choice == 'none':
        return user_profile(env)
    if choice:
        if not os.path.isfile(choice):
            raise ConfigError('--dds-profile %s: no such file' % choice)
        for name in PROFILE_VARIABLES:
            env[name] = os.path.abspath(choice)
        return env[PROFILE_VARIABLES[0]]
    chosen = user_profile(env)
    if chosen:
        if not os.path.isfile(chosen):
            name = next(n for n in PROFILE_VARIABLES if env.get(n))
            raise ConfigError('%s=%s: no such file (unset it to use hetero_infer\'s profile '
                              'for camera frames, %s)' % (name, chosen, PROFILE_FILE))
        return chosen
    path = profile_path()
    for name in PROFILE_VARIABLES:
        env[name] = path
    return path
