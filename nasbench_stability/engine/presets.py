"""How big a run is: the presets, torch-free so that `nbs --help` and the cost line need no torch.

A preset sizes the network and the data; ``epochs=None`` keeps the method's own schedule. Only ``cpu-small``
and ``smoke`` cut the schedule, and everything made with them says so (:func:`cut_schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """How big a run is. ``None`` means: the method's own default (paper settings)."""

    name: str
    description: str
    channels: int
    cells_per_stage: int
    data_subset: int | None      # examples per half (train / valid); None = the full 25k halves
    epochs: int | None
    eval_batches: int | None     # valid batches evaluated per epoch; None = the whole valid half


#: presets whose epochs are cut below the method's own: every run, report and reproduction made with
#: one says so, since a cut schedule hides collapse (DARTS-V1 collapses after epoch 10 at the CPU scale)
CUT_SCHEDULE_NOTE = "epochs cut to {epochs}, not the method's own {own}: a look at the pipeline, not a study"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("smoke", "seconds on a CPU: C=8, N=1, 256+256 images, 2 epochs (cut: tests)", 8, 1, 256, 2, 2),
        # our choice: cpu-small's network and data (C=8, N=2, 2048+2048 images, 8 valid batches evaluated)
        # with the method's own schedule, so that the phenomenon (collapse over 50 epochs) is there to see
        Preset("cpu", "a study on a CPU: C=8, N=2, 2048+2048 images, the method's own epochs", 8, 2, 2048, None, 8),
        Preset("cpu-small", "a quick look on a CPU: C=8, N=2, 2048+2048 images, epochs cut to 10", 8, 2, 2048, 10, 8),
        Preset("paper", "the NB201 reference: C=16, N=5, 25k+25k images, the method's epochs", 16, 5, None, None, None),
    )
}


PRESET_HELP = ("smoke | cpu | cpu-small | paper (default: paper on CUDA, cpu on CPU). cpu: C=8, N=2, 2048 images "
               "per half, the method's own epochs; cpu-small: the same with epochs cut to 10 (a quick look, no "
               "study); smoke: 2 epochs (tests).")


def cut_schedule(preset: str, epochs: int, own_epochs: int) -> str | None:
    """A one-line warning when a run's epochs are below the method's own (a cut preset or ``--epochs``), else None."""
    if epochs >= own_epochs:
        return None
    return f"{preset} preset: " + CUT_SCHEDULE_NOTE.format(epochs=epochs, own=own_epochs)


def default_preset(device: str) -> str:
    """The paper settings on CUDA; on a CPU the small network and data (the paper's size takes days there)
    with the method's own schedule."""
    return "paper" if device.startswith("cuda") else "cpu"


