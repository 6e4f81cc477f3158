"""Driving a sweep: the work (grid or Optuna), the executors it is handed to, the live view, evaluation."""
