"""expresso-edge: on-device estimation of depression-related facial behaviour.

A research and screening aid, never a diagnostic device. This package is the device side and never imports torch.
"""

__version__ = "0.1.0"

NOT_A_DIAGNOSTIC_DEVICE = (
    "Research and screening aid only: not a diagnostic device. Scores estimate facial behaviour associated "
    "with depression severity (on the scale the model and each summary name) and must not be used to diagnose or "
    "treat anyone."
)
