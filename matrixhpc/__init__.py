"""matrixhpc: peer-to-peer multi-agent synthetic data generation on Slurm clusters."""

__version__ = "0.1.0"
