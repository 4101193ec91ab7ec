"""Sweeps: a whole study (methods × option grids × datasets × seeds) from one TOML file.

``study`` parses and checks the file, ``expand`` turns it into run configs with their run
directories, ``executors`` runs them (worker processes here, or tasks on a Ray cluster). Idempotence
and kill-safety are the engine's: every run directory is locked, checkpointed and resumable.
"""
