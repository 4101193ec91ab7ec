"""Gradient-based methods on a continuous relaxation of the cell: DARTS and the seed papers' methods.

Every module here builds on :class:`.darts_family.DartsFamily` (one α for all cells, bi-level or
single-level steps, packed seeds), except CDARTS (:mod:`.cdarts`), which trains a second network beside
the supernet.
"""
