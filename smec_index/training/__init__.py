"""Training machinery shared by SMEC and the adapter baselines."""
