"""Runtime: devices, process groups, precision, models, training and settings objects."""
