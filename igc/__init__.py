"""igc: interleaved group convolutions (IGCV1, IGCV2, IGCV3) and their baselines."""

__version__ = "0.1.0"
