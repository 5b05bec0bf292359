"""Test-session setup shared by every test file.

DDS discovery must stay on this machine and parallel runs must not see each other, whatever
started pytest (make test, an IDE, CI): the variables of ../shared/ros/localhost.env are set here
before any test imports rclpy, and child processes inherit them.
"""

import os
import random

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
if not os.environ.get('ROS_DOMAIN_ID'):
    # 1..100 are valid domain ids on Linux with the default port mapping.
    os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))
