"""Weight-sharing methods that train the supernet on sampled single-path cells (NB201's baselines):
GDAS, SETN, RSPS, ENAS. Single-path steps compute only the sampled ops (the cell's ``active`` mask)."""
