"""Methods proposed against the collapse of differentiable search (PC-DARTS, FairDARTS, DARTS-, SDARTS,
DrNAS, R-DARTS, β-DARTS, DARTS-PT): DARTS-family variants, each with the math that defines it."""
