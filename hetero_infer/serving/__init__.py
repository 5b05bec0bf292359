"""The serving core, usable without ROS: applications (:mod:`.apps`), pre- and post-processing,
the engine (requests -> router -> one worker per processor -> outcomes), the planner process,
result and status documents, and :class:`.service.Service`, which the scheduler node wraps.

Nothing here imports rclpy or a ROS message package (``test/test_core_import_isolation.py``)."""
