"""On-device batches for the search loop: whole splits live on the device as uint8, batches are
gathered, augmented and normalized there with a handful of tensor ops.

Why not a DataLoader: on 32x32 images the per-sample Python of torchvision transforms dominates a
DARTS step, and worker processes complicate exact resume. Here each epoch's randomness comes from
a generator seeded by ``(seed, stream name, epoch[, batch])``, so epoch ``e`` (even from batch
``k`` on) is identical whether or not the process restarted in between, with no RNG state to save.
Reproducibility is per device type: CPU and CUDA generators give different streams.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .containers import ImageArrays

Stats = Sequence[float] | torch.Tensor


@dataclass(frozen=True)
class DeviceSplit:
    """Images (N, 3, H, W) uint8 and labels (N,) int64, both on the training device."""

    x: torch.Tensor
    y: torch.Tensor

    @classmethod
    def from_arrays(cls, arrays: ImageArrays, device: torch.device | str = "cpu") -> DeviceSplit:
        x = torch.from_numpy(np.ascontiguousarray(arrays.x)).permute(0, 3, 1, 2).contiguous()
        return cls(x.to(device), torch.from_numpy(arrays.y).to(device))

    @property
    def device(self) -> torch.device:
        return self.x.device

    def __len__(self) -> int:
        return int(self.y.shape[0])


def _channel_stats(values: Stats, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=like.device).view(1, -1, 1, 1)


def normalize(x: torch.Tensor, mean: Stats, std: Stats) -> torch.Tensor:
    """uint8 (B, C, H, W) in 0..255 -> float32 ``(x/255 - mean) / std`` (stats on the 0..1 scale)."""
    mean_t, std_t = _channel_stats(mean, x), _channel_stats(std, x)
    return (x.to(torch.float32) / 255.0 - mean_t) / std_t


def eval_transform(x: torch.Tensor, mean: Stats, std: Stats) -> torch.Tensor:
    """What evaluation sees: the images, normalized (no augmentation)."""
    return normalize(x, mean, std)


def augment(x: torch.Tensor, generator: torch.Generator, mean: Stats, std: Stats,
            padding: int | None = None) -> torch.Tensor:
    """NB201's training augmentation for a whole batch: random crop + horizontal flip + normalize.

    Equivalent to per-sample ``RandomCrop(H, padding)`` (zero padding; ``padding`` defaults to
    H/8, i.e. 4 for CIFAR's 32 and 2 for ImageNet16's 16, as NB201 uses) and
    ``RandomHorizontalFlip``: each output pixel (b, c, i, j) is read from the zero-padded image
    at (off_y[b] + i, off_x[b] + j), with j mirrored for flipped samples -- one gather.
    """
    b, c, h, w = x.shape
    pad = h // 8 if padding is None else padding
    dev = x.device
    off_y = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    off_x = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    flip = torch.randint(0, 2, (b,), generator=generator, device=dev).bool()
    cols = torch.arange(w, device=dev)
    rows = off_y[:, None] + torch.arange(h, device=dev)                       # (B, H)
    cols = off_x[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)     # (B, W)
    padded = F.pad(x, (pad, pad, pad, pad))
    out = padded[
        torch.arange(b, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    return normalize(out, mean, std)


def derive_seed(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit seed that depends on all of (seed, stream name, keys) and on nothing else."""
    entropy = [seed % 2**64, zlib.crc32(stream.encode()), *(k % 2**64 for k in keys)]
    lo, hi = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return ((int(hi) << 32) | int(lo)) >> 1


class BatchStream:
    """Epochs of (x, y) batches over a DeviceSplit, reproducible from (seed, stream, epoch).

    The permutation of epoch ``e`` comes from ``derive_seed(seed, stream, e, 0)`` and the
    augmentation of its batch ``k`` from ``derive_seed(seed, stream, e, k + 1)``; a ``stream``
    name per consumer ("train", "valid", ...) keeps their randomness independent.
    ``limit_batches`` caps batches per epoch (quick presets); ``shuffle=False`` gives the split in
    order, for evaluation.
    """

    def __init__(self, split: DeviceSplit, batch_size: int, seed: int, stream: str, augment: bool,
                 *, mean: Stats, std: Stats, drop_last: bool = True, limit_batches: int | None = None,
                 shuffle: bool = True) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        self.split, self.batch_size, self.seed, self.stream = split, batch_size, seed, stream
        self.augment, self.drop_last, self.shuffle = augment, drop_last, shuffle
        self.limit_batches = limit_batches
        self.mean = _channel_stats(mean, split.x)  # on the device once, not per batch
        self.std = _channel_stats(std, split.x)
        if len(self) == 0:
            raise ConfigError(
                f"{stream}: no batches of {batch_size} from {len(split)} examples"
                + (" (drop_last)" if drop_last else "")
            )

    def __len__(self) -> int:
        n = len(self.split)
        full = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return full if self.limit_batches is None else min(full, self.limit_batches)

    def _generator(self, seed: int) -> torch.Generator:
        g = torch.Generator(device=self.split.device)
        g.manual_seed(seed)
        return g

    def order(self, epoch: int) -> torch.Tensor:
        """The example order of ``epoch`` (all examples, before batching)."""
        n, dev = len(self.split), self.split.device
        if not self.shuffle:
            return torch.arange(n, device=dev)
        g = self._generator(derive_seed(self.seed, self.stream, epoch, 0))
        return torch.randperm(n, generator=g, device=dev)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``start..len(self)-1`` of ``epoch``; the same tensors every time it is asked."""
        perm = self.order(epoch)
        g = self._generator(0) if self.augment else None
        for k in range(start, len(self)):
            idx = perm[k * self.batch_size:(k + 1) * self.batch_size]
            x, y = self.split.x[idx], self.split.y[idx]
            if g is not None:
                g.manual_seed(derive_seed(self.seed, self.stream, epoch, k + 1))
                yield augment(x, g, self.mean, self.std), y
            else:
                yield eval_transform(x, self.mean, self.std), y
