"""BOHB (Falkner, Klein, Hutter, ICML 2018) on the table, through hpbandster, the authors' implementation.

Why hpbandster: it is BOHB itself (Hyperband's schedule with a TPE-like kernel-density model per
budget), the package xautodl's BOHB.py runs for NB201's published numbers, and it installs from PyPI
with pip on this Python (netifaces, one of its dependencies, compiles with the system C compiler).
SMAC3's multi-fidelity facade, the maintained successor, replaces BOHB's KDE with a random forest,
another algorithm. hpbandster is unmaintained since 2018: :func:`_library` names the missing extra.

Fidelity: hpbandster's budgets are training epochs. Our tables hold each cell's *final* hp=12
accuracy (and 200-epoch accuracies), not per-epoch curves, so there is one fidelity: min_budget =
max_budget = ``signal_epochs``. Hyperband then has a single rung: each of its iterations is one
configuration evaluated at full budget, and what BOHB adds over random search is its KDE model
(``random_fraction`` 0: every configuration after the first d+1 = 7 comes from the model). xautodl's
NB201 BOHB.py is no different in effect: it passes min 12, max 200 but reads the same 200-epoch
accuracy at every budget; its NATS-Bench bohb.py, on a benchmark with per-epoch curves, uses budgets
1..12 epochs.

Driving it: hpbandster's ``Master`` schedules iterations through a Pyro4 name server and worker
threads. With one rung its schedule is: ask the config generator for a configuration at the max
budget, evaluate it, report the result — so this module makes exactly those calls to hpbandster's
BOHB config generator, in the same order, single-process and with no sockets (checked to give the
same configurations as the Master with a one-worker name server, 4× faster).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...ranges import FRACTION, POSITIVE, Range
from ...space.ops import EDGES, OPS
from ..options import OURS, option, reference
from ..registry import register
from .base import (BUDGET_DEPARTURE, SIGNAL_DEPARTURE, XAUTODL_BOHB, XAUTODL_BOHB_SH, Cell, Oracle, TableSearch,
                   TableSearchOptions)

_PAPER = ("Falkner, Klein, Hutter. BOHB: Robust and Efficient Hyperparameter Optimization at Scale. ICML 2018; "
          "on NB201 as in Dong & Yang, ICLR 2020 §5 (xautodl exps/NAS-Bench-201-algos/BOHB.py)")
HPBANDSTER = reference("hpbandster 0.7.4 optimizers/config_generators/bohb.py (default)")
NUM_SAMPLES = Range(1, 100_000)
TOP_PERCENT = Range(1, 99)


@dataclass(frozen=True)
class BohbOptions(TableSearchOptions):
    signal_epochs: int = option(12, f"{OURS} (AutoDL-Projects exps/NAS-Bench-201-algos/BOHB.py:94-96 reads "
                                       "hp=\"200\", the 200-epoch valid accuracy)",
                                "training epochs of the search signal, the dataset's valid accuracy. 12: the "
                                "table's exact 12-epoch column (as REA/RS/REINFORCE); 200 (the authors') reads the "
                                "200-epoch valid column, approximate in tables built offline", (12, 200))
    num_samples: int = option(4, XAUTODL_BOHB_SH, "configurations drawn from the good KDE per proposal, the best "
                              "by the l(x)/g(x) ratio is evaluated (--num_samples 4)", bounds=NUM_SAMPLES)
    random_fraction: float = option(0.0, XAUTODL_BOHB_SH, "share of proposals drawn uniformly instead of from the "
                                    "model (--random_fraction 0.0)", bounds=FRACTION)
    bandwidth_factor: float = option(3.0, XAUTODL_BOHB_SH, "widens the KDE bandwidth when sampling candidates "
                                     "(--bandwidth_factor 3)", bounds=POSITIVE)
    min_bandwidth: float = option(0.3, XAUTODL_BOHB, "smallest KDE bandwidth, keeps exploring (--min_bandwidth "
                                  "default 0.3)", bounds=POSITIVE)
    top_n_percent: int = option(15, HPBANDSTER, "percent of the observations that make the good KDE "
                                "(BOHB paper's q = 15%)", bounds=TOP_PERCENT)


@register("bohb", summary="BOHB on the benchmark table through hpbandster (one fidelity: its KDE model, "
                          "xautodl's settings)",
          paper=_PAPER, options=BohbOptions,
          departures=(SIGNAL_DEPARTURE, BUDGET_DEPARTURE,
                      "one fidelity (the table's final hp=12 accuracy): Hyperband has a single rung, so BOHB is "
                      "its KDE model without early stopping; xautodl's NB201 run also has one fidelity in effect "
                      "(it reads the same accuracy at every budget), but its signal is the 200-epoch valid "
                      "accuracy (BOHB.py:94-96), a different signal: signal_epochs=200 reads it, approximate in a "
                      "table built offline, hence 12 by default",
                      "hpbandster's config generator is called directly, in the Master's order, instead of "
                      "through a Pyro4 name server and worker threads (same configurations, no sockets)"))
class Bohb(TableSearch):
    def __init__(self, options: BohbOptions, seed: int) -> None:
        super().__init__(options, seed)
        self.names = [f"{target}<-{source}" for source, target in EDGES]   # xautodl's hyperparameter names
        self.library = _library()
        self.model_based = 0   # proposals the KDE made (the others: random, before the model or as its fallback)

    def search(self, oracle: Oracle) -> None:
        cs_module, generator_cls, job_cls = self.library
        space = cs_module.ConfigurationSpace(seed=self.seed % 2**32)
        for name in self.names:
            space.add(cs_module.CategoricalHyperparameter(name, list(OPS)))
        opts = self.options
        # hpbandster's KDE sampling draws from numpy's global RNG: seed it, and restore it after
        saved = np.random.get_state()
        np.random.seed(self.seed % 2**32)
        # hpbandster logs a multi-line warning for every candidate whose EI is NaN (its open issue #100 with
        # categoricals: statsmodels' Aitchison-Aitken kernel goes negative at bandwidths above 1); it then
        # moves on to the next candidate or a random configuration, as it did for xautodl
        quiet = logging.getLogger("hpbandster")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # statsmodels' and ConfigSpace's deprecation notices
                model = generator_cls(space, num_samples=opts.num_samples, random_fraction=opts.random_fraction,
                                      bandwidth_factor=opts.bandwidth_factor, min_bandwidth=opts.min_bandwidth,
                                      top_n_percent=opts.top_n_percent)
                budget = float(opts.signal_epochs)
                for iteration in range(2**62):
                    config, info = model.get_config(budget)
                    self.model_based += bool(info.get("model_based_pick"))
                    signal = oracle.query(self.cell_of(config))
                    job = job_cls((iteration, 0, 0), config=config, budget=budget, config_info=info)
                    job.result, job.exception = {"loss": 100.0 - signal, "info": {}}, None
                    model.new_result(job)
        finally:
            np.random.set_state(saved)
            quiet.setLevel(level)

    def cell_of(self, config: dict[str, Any]) -> Cell:
        return tuple(OPS.index(str(config[name])) for name in self.names)


def _library():
    """(ConfigSpace, hpbandster's BOHB config generator, its Job); ConfigError naming the extra if absent."""
    try:
        import ConfigSpace
        from hpbandster.core.dispatcher import Job
        from hpbandster.optimizers.config_generators.bohb import BOHB
    except ImportError as err:
        raise ConfigError(f"bohb needs hpbandster and ConfigSpace ({err}); install them with "
                          f"`pip install 'nasbench_stability[multitrial]'`") from None
    return ConfigSpace, BOHB, Job

