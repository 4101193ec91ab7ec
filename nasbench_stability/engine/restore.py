"""Bring a run's search state back from its directory (for analyses that need the supernet)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..data.search import SearchData, search_data
from ..errors import ConfigError, MissingFileError, NbsError
from ..methods.base import SearchMethod
from .checkpoint import load_checkpoint, restore_state
from .config import RunConfig
from .run import CHECKPOINT_FILE, CONFIG_FILE, build_method, steps_per_epoch


@dataclass
class RestoredRun:
    config: RunConfig
    method: SearchMethod     # weights and α as of the last checkpoint
    data: SearchData
    epochs_done: int


def restore_run(run_dir: Path, *, data_root: Path | None = None, device: str | None = None) -> RestoredRun:
    run_dir = Path(run_dir)
    cfg_path, ckpt_path = run_dir / CONFIG_FILE, run_dir / CHECKPOINT_FILE
    for p in (cfg_path, ckpt_path):
        if not p.exists():
            raise MissingFileError(f"{p} not found; is {run_dir} an nbs run directory with a finished epoch?")
    try:
        config = RunConfig.from_dict(json.loads(cfg_path.read_text()))
    except (OSError, ValueError, TypeError, AttributeError, KeyError, NbsError) as err:
        raise ConfigError(f"{cfg_path} is not a readable nbs config ({err})") from None
    saved_hash = config.config_hash
    if device is not None and device != config.device:
        config = dataclasses.replace(config, device=device)
    # the checkpoint first: a bad one fails before the data is loaded (and never runs code)
    payload = load_checkpoint(ckpt_path, config_hash=saved_hash, device=config.torch_device())
    data = search_data(config.dataset, data_root, config.seed, subset=config.data_subset,
                       device=config.torch_device(), split_policy=config.split_policy, include_test=False)
    method = build_method(config, data.num_classes, steps_per_epoch(config, data))
    restore_state(method, payload, ckpt_path, rng=False)
    method.eval()
    return RestoredRun(config, method, data, payload["epochs_done"])
