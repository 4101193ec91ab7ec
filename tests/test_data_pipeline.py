"""Device pipeline: vectorized augmentation against a naive reference, reproducible batch streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasbench_stability.data import BatchStream, DeviceSplit, augment, derive_seed, eval_transform, normalize
from nasbench_stability.data.synthetic import random_images
from nasbench_stability.errors import ConfigError

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def split_of(n: int = 64, size: int = 32, device: str = "cpu") -> DeviceSplit:
    return DeviceSplit.from_arrays(random_images(n, size, 10, seed=0), device)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Undo normalize (exact up to float rounding)."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return ((x * std + mean) * 255).round().to(torch.uint8)


def test_device_split_layout():
    arrays = random_images(5, 32, 10, seed=1)
    s = DeviceSplit.from_arrays(arrays)
    assert s.x.shape == (5, 3, 32, 32) and s.x.dtype == torch.uint8 and s.y.dtype == torch.int64
    assert torch.equal(s.x[2].permute(1, 2, 0), torch.from_numpy(arrays.x[2])) and len(s) == 5


def test_augment_shape_dtype_and_normalization():
    x = split_of(256).x
    out = augment(x, torch.Generator().manual_seed(0), MEAN, STD)
    assert out.shape == x.shape and out.dtype == torch.float32 and out.is_contiguous()
    ref = normalize(x, MEAN, STD)
    assert torch.allclose(eval_transform(x, MEAN, STD), ref)
    # white pixel of channel 0 -> (1 - mean)/std, black -> -mean/std
    white = normalize(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8), MEAN, STD).flatten()
    assert torch.allclose(white, (1 - torch.tensor(MEAN)) / torch.tensor(STD))
    assert torch.equal(to_uint8(ref), x), "normalization is exactly invertible (used below)"


def reference_augment(img: np.ndarray, off_y: int, off_x: int, flip: bool, pad: int = 4) -> np.ndarray:
    """torchvision's RandomCrop(padding) + RandomHorizontalFlip, one image, the slow obvious way."""
    c, h, w = img.shape
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), img.dtype)
    padded[:, pad:pad + h, pad:pad + w] = img
    crop = padded[:, off_y:off_y + h, off_x:off_x + w]
    return crop[:, :, ::-1] if flip else crop


@pytest.mark.parametrize("size", [32, 16])
def test_augment_matches_naive_crop_and_flip(size):
    x = split_of(16, size).x
    seed, pad = 123, size // 8
    out = to_uint8(augment(x, torch.Generator().manual_seed(seed), MEAN, STD))
    # replay the generator exactly as augment draws: y offsets, x offsets, flips
    g = torch.Generator().manual_seed(seed)
    off_y = torch.randint(0, 2 * pad + 1, (16,), generator=g)
    off_x = torch.randint(0, 2 * pad + 1, (16,), generator=g)
    flip = torch.randint(0, 2, (16,), generator=g).bool()
    assert 0 < int(flip.sum()) < 16 and len(set(off_y.tolist())) > 1, "draw covers both cases"
    for i in range(16):
        ref = reference_augment(x[i].numpy(), int(off_y[i]), int(off_x[i]), bool(flip[i]), pad)
        np.testing.assert_array_equal(out[i].numpy(), ref)


def test_augment_covers_all_shifts_and_flips():
    """Over many draws every offset 0..8 and both flips occur; a centered, unflipped crop is identity."""
    x = split_of(1).x.expand(4000, -1, -1, -1)
    out = to_uint8(augment(x, torch.Generator().manual_seed(0), MEAN, STD))
    identical = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert 0 < int(identical.sum()) < 200 and 0 < int(flipped.sum()) < 200  # ~1/162 each
    # black border width tells the offset; all 9 vertical offsets appear
    top_black = (out.sum(dim=(1, 3)) == 0).int().cumprod(1).sum(1)
    bottom_black = (out.sum(dim=(1, 3)) == 0).int().flip(1).cumprod(1).sum(1)
    shifts = set((top_black - bottom_black).tolist())
    assert shifts == set(range(-4, 5))


def stream(split: DeviceSplit, **kw) -> BatchStream:
    args = dict(batch_size=16, seed=7, stream="train", augment=True, mean=MEAN, std=STD)
    return BatchStream(split, **{**args, **kw})


def collect(s: BatchStream, epoch: int, start: int = 0):
    return [(x.clone(), y.clone()) for x, y in s.epoch(epoch, start)]


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_stream_is_reproducible_per_epoch_and_resumable_mid_epoch():
    split = split_of(100)
    first, fresh = stream(split), stream(split)  # a "restarted process" is just a new stream
    e3 = collect(first, 3)
    assert same(e3, collect(fresh, 3))
    assert same(e3[2:], collect(fresh, 3, start=2))
    assert not same(e3, collect(first, 4))
    assert not same(e3, collect(stream(split, seed=8), 3))
    assert not same(e3, collect(stream(split, stream="valid"), 3))


def test_stream_covers_each_example_once_per_epoch():
    split = DeviceSplit(torch.zeros(100, 3, 32, 32, dtype=torch.uint8), torch.arange(100))
    s = stream(split, batch_size=32)
    assert len(s) == 3
    seen = torch.cat([y for _, y in s.epoch(0)])
    assert len(seen) == 96 and len(set(seen.tolist())) == 96
    s = stream(split, batch_size=32, drop_last=False)
    assert len(s) == 4 and sorted(torch.cat([y for _, y in s.epoch(0)]).tolist()) == list(range(100))
    assert len(stream(split, batch_size=32, limit_batches=2)) == 2
    assert len(list(stream(split, batch_size=32, limit_batches=2).epoch(0))) == 2
    ordered = stream(split, batch_size=32, drop_last=False, shuffle=False, augment=False)
    assert torch.cat([y for _, y in ordered.epoch(5)]).tolist() == list(range(100))


def test_stream_without_augmentation_is_normalized_images():
    split = split_of(32)
    (x, y), = stream(split, batch_size=32, augment=False, shuffle=False).epoch(0)
    assert torch.equal(x, normalize(split.x, MEAN, STD)) and torch.equal(y, split.y)


def test_stream_rejects_empty_epochs():
    with pytest.raises(ConfigError, match="no batches"):
        stream(split_of(10), batch_size=16)


def test_derive_seed_separates_its_inputs():
    seeds = {derive_seed(s, n, e) for s in (0, 1) for n in ("train", "valid") for e in (0, 1)}
    assert len(seeds) == 8 and all(0 <= v < 2**63 for v in seeds)
    assert derive_seed(0, "train", 1) == derive_seed(0, "train", 1)


@CUDA
@pytest.mark.cuda
def test_cuda_matches_reference_and_is_reproducible():
    split = split_of(64, device="cuda")
    s = stream(split)
    a, b = collect(s, 0), collect(stream(split), 0)
    assert same(a, b) and a[0][0].device.type == "cuda"
    x = split.x[:8]
    out = to_uint8(augment(x, torch.Generator(device="cuda").manual_seed(1), MEAN, STD)).cpu()
    g = torch.Generator(device="cuda").manual_seed(1)
    off_y, off_x = (torch.randint(0, 9, (8,), generator=g, device="cuda").cpu() for _ in range(2))
    flip = torch.randint(0, 2, (8,), generator=g, device="cuda").bool().cpu()
    for i in range(8):
        ref = reference_augment(x[i].cpu().numpy(), int(off_y[i]), int(off_x[i]), bool(flip[i]))
        np.testing.assert_array_equal(out[i].numpy(), ref)
