"""Multi-trial baselines that search the NB201 benchmark table (RS, REA, REINFORCE, BOHB): no supernet."""
