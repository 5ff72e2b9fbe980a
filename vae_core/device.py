"""Which torch device to run on (auto picks CUDA, then Apple's MPS, then the CPU), and the weight layout that runs fastest on a CPU."""
import copy

import torch

from vae_core import VaeError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    if name not in DEVICE_CHOICES:
        raise VaeError(f"Unknown device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}.")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaeError("--device cuda was asked for but PyTorch sees no CUDA GPU here; use --device auto or cpu.")
    if name == "mps" and not _mps_available():
        raise VaeError("--device mps was asked for but this machine has no Apple MPS device; use --device auto or cpu.")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A short human label: 'CPU (2 threads)' or 'CUDA: NVIDIA H100 80GB HBM3'."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'s' if n != 1 else ''})"


def cpu_fast_layout(model, device: torch.device, keep_original: bool = False):
    """The model with channels-last weights when it runs on a CPU, else as it is.

    oneDNN's (transposed) convolutions run faster on that layout: 1.83x the training
    images per second and 3.2x the decodes per second for the z = 50 dec+1 ConvVAE here
    (benchmarks/train_speed.py (c), benchmarks/eval_speed.py), with logits equal to 1e-4.
    save_checkpoint stores weights contiguous, so nothing downstream sees the layout;
    linear models have no 4-D weights (a no-op). keep_original converts a copy instead.
    """
    if device.type != "cpu":
        return model
    if keep_original:
        model = copy.deepcopy(model)
    return model.to(memory_format=torch.channels_last)
