"""Python steps used by the shipped workflows (configs/*.yaml)."""
