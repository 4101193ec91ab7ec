import numpy as np
import pandas as pd
import pytest

from nasbench_stability.errors import ArchStringError
from nasbench_stability.space.genotype import Genotype
from nasbench_stability.space.ops import OPS

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def nats(shared):
    return pd.read_csv(shared / "nb201" / "nats_bench.csv")


def test_every_benchmark_string_round_trips(nats):
    for arch in nats.ArchitectureString:
        assert Genotype.from_str(arch).to_str() == arch


def test_canonical_key_reproduces_nb201_isomorphism_classes(nats):
    keys = [Genotype.from_str(a).canonical_key for a in nats.ArchitectureString]
    assert len(set(keys)) == 6466
    assert keys == list(nats.UniqueString)  # the same string, not only the same partition


def test_naslib_tuple_matches_published_convention(shared):
    zc = pd.read_csv(shared / "nb201" / "extras" / "nb201_zc_proxies.csv", usecols=["net", "net_str"]).head(500)
    for net, net_str in zip(zc.net, zc.net_str):
        g = Genotype.from_naslib(net)
        assert g.to_str() == net_str
        assert str(g.to_naslib()) == net


def test_edge_order_and_param_free_count():
    g = Genotype.from_str("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    assert g.ops == ("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3")
    assert g.param_free_count == 3
    assert Genotype.from_str(ALL_SKIP).param_free_count == 6


def test_from_weights_takes_argmax_with_none_included_and_first_on_ties():
    w = np.zeros((6, 5))
    w[0, 0] = 1.0          # none wins edge 0
    w[1, 3] = 0.5          # conv3x3 wins edge 1
    g = Genotype.from_weights(w)
    assert g.ops[0] == "none" and g.ops[1] == "nor_conv_3x3"
    assert g.ops[2] == OPS[0]  # all-equal row: the first op
    with pytest.raises(ArchStringError):
        Genotype.from_weights(np.zeros((5, 5)))


@pytest.mark.parametrize("bad", [
    "", "|skip_connect~0|", "|skip_connect~0|+|skip_connect~0|skip_connect~1|",
    "|conv~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|skip_connect~1|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~0|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "(0, 0, 0)", "(0, 0, 0, 0, 0, 9)",
])
def test_malformed_input_raises_arch_string_error(bad):
    with pytest.raises(ArchStringError):
        Genotype.parse(bad)


def test_parse_accepts_string_and_naslib_tuple():
    assert Genotype.parse(" " + ALL_SKIP + " ") == Genotype.parse("(0, 0, 0, 0, 0, 0)")
