"""ros2 launch hetero_infer serve.launch.py [config:=FILE] [backend:=...] [platform:=...]
[namespace:=NS] [log_level:=info] [sources:=true] [dds_profile:=FILE]

Starts the scheduler node with the given parameter file and, with sources:=true, the synthetic
camera / audio sources of `hetero-infer sources` so the pipeline can be seen working.

Every process started here gets the Fast DDS profile for camera frames
(share/hetero_infer/config/fastdds_camera.xml, a 32 MB shared-memory segment) through
FASTRTPS_DEFAULT_PROFILES_FILE (Jazzy) and FASTDDS_DEFAULT_PROFILES_FILE (later distros), unless
either is set in the environment of `ros2 launch` (that profile is passed on instead) or
dds_profile:=FILE names another one.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description():
    share = get_package_share_directory('hetero_infer')
    default_config = os.path.join(share, 'config', 'serve.yaml')
    config = LaunchConfiguration('config')
    namespace = LaunchConfiguration('namespace')
    log_level = LaunchConfiguration('log_level')
    profile = (os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE')
               or os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE')
               or os.path.join(share, 'config', 'fastdds_camera.xml'))
    dds_env = {'FASTRTPS_DEFAULT_PROFILES_FILE': LaunchConfiguration('dds_profile'),
               'FASTDDS_DEFAULT_PROFILES_FILE': LaunchConfiguration('dds_profile')}
    return LaunchDescription([
        DeclareLaunchArgument('config', default_value=default_config,
                              description='scheduler parameter file (see config/serve.yaml)'),
        DeclareLaunchArgument('backend', default_value='emulated',
                              description='emulated | onnxruntime | tensorrt'),
        DeclareLaunchArgument('platform', default_value='xavier',
                              description='platform description: xavier | orin | a YAML path'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the nodes'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug | info | warn | error'),
        DeclareLaunchArgument('sources', default_value='false',
                              description='also start the synthetic camera and audio sources'),
        DeclareLaunchArgument('dds_profile', default_value=profile,
                              description='Fast DDS XML profile of every process started here '
                              '(default: the environment\'s, else the package\'s '
                              'config/fastdds_camera.xml)'),
        Node(
            package='hetero_infer', executable='scheduler_node', name='scheduler',
            namespace=namespace, output='screen',
            parameters=[config, {'backend': LaunchConfiguration('backend'),
                                 'platform': LaunchConfiguration('platform')}],
            arguments=['--ros-args', '--log-level', log_level],
            additional_env=dds_env,
        ),
        Node(
            package='hetero_infer', executable='sources_node', name='sources',
            namespace=namespace, output='screen',
            parameters=[config],
            arguments=['--ros-args', '--log-level', log_level],
            additional_env=dds_env,
            condition=IfCondition(LaunchConfiguration('sources')),
        ),
    ])
