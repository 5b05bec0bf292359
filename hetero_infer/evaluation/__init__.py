"""The evaluation: scenarios, jobs, the runner, statistics, reports and calibration."""
