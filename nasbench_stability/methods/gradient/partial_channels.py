"""The search network with PC-DARTS partial channels (:mod:`...space.partial_channel_cell`), for the
methods that offer them (DNAS, PC-DARTS, DrNAS): K = 1 is the plain mixed cell."""

from __future__ import annotations

from ...errors import ConfigError
from ...space.mixed_cell import MixedCell
from ...space.partial_channel_cell import PartialChannelCell
from ...space.supernet import NetworkShape, Supernet


def partial_channel_supernet(method: str, shape: NetworkShape, k: int, track_running_stats: bool) -> Supernet:
    """Searchable cells whose ops see 1/``k`` of the channels; ConfigError (naming ``method``) when the
    channels do not divide (the stages have C, 2C and 4C channels, so C divisible by k is enough)."""
    if k == 1:
        return Supernet(shape, lambda c: MixedCell(c, track_running_stats=track_running_stats))
    if shape.channels % k:
        raise ConfigError(f"{method}: partial_channels={k} needs channels divisible by {k} (got C={shape.channels})")
    return Supernet(shape, lambda c: PartialChannelCell(c, k, track_running_stats=track_running_stats))
