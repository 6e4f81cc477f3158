"""What one trial does: data, models, attacks, weight-decay methods, the epoch loop.

Never imports Ray or `orchestrator`.
"""

from trials.config import TrialConfig
from trials.train import run_trial

__all__ = ["TrialConfig", "run_trial"]
