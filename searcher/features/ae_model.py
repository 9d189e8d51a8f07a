"""The autoencoder as a torch module (training, and the torch inference backend); torch is imported on use."""

from __future__ import annotations

import os
from typing import Sequence

from searcher.features.ae_weights import CHANNELS, DEFAULT_LATENT_DIM, INPUT_SIZE, read_weights_file

THREADS_ENV = "SEARCHER_TORCH_THREADS"


def _encoder_layers(nn, channels: tuple[int, ...]) -> list:
    """3x3 stride-2 convs (no bias), each followed by BatchNorm and ReLU."""
    layers, c_in = [], 3
    for c_out in channels:
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        c_in = c_out
    return layers


def _decoder_layers(nn, c_top: int, n: int) -> list:
    """4x4 stride-2 transposed convs halving the channels at each doubling of the resolution, then RGB and a sigmoid."""
    up, c = [], c_top
    for i in range(n):
        if i + 1 < n:
            c_next = max(16, c // 2)
            up += [
                nn.ConvTranspose2d(c, c_next, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_next),
                nn.ReLU(inplace=True),
            ]
            c = c_next
        else:
            up += [nn.ConvTranspose2d(c, 3, 4, stride=2, padding=1), nn.Sigmoid()]
    return up


def build_model(latent_dim: int = DEFAULT_LATENT_DIM, input_size: int = INPUT_SIZE, channels: Sequence[int] = CHANNELS):
    """A ConvAutoencoder (torch.nn.Module) with `encode`, `decode` and `forward` -> (latent, reconstruction).

    The decoder: linear to the encoder's last grid, then 4x4 stride-2 transposed convs halving the
    channels (128-64-32-16-3), and a sigmoid: it reconstructs the
    image in [0, 1] (RGB, input_size x input_size), not in the normalised input space.
    """
    import torch
    from torch import nn

    channels = tuple(int(c) for c in channels)
    n = len(channels)
    if input_size % (2**n):
        raise ValueError(f"input size {input_size} is not divisible by 2**{n}")
    grid = input_size // (2**n)

    class ConvAutoencoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.latent_dim = int(latent_dim)
            self.input_size = int(input_size)
            self.channels = channels
            self.features = nn.Sequential(*_encoder_layers(nn, channels))
            c_in = channels[-1]
            self.to_latent = nn.Linear(c_in * grid * grid, self.latent_dim)
            self.from_latent = nn.Sequential(nn.Linear(self.latent_dim, c_in * grid * grid), nn.ReLU(inplace=True))
            self.upsample = nn.Sequential(*_decoder_layers(nn, c_in, n))
            self._grid = grid
            self._top = c_in

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.to_latent(torch.flatten(self.features(x), 1))

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            h = self.from_latent(z).view(-1, self._top, self._grid, self._grid)
            return self.upsample(h)

        def forward(self, x: torch.Tensor):
            z = self.encode(x)
            return z, self.decode(z)

    return ConvAutoencoder()


def load_model(path: str | os.PathLike):
    """Build the model described by a weights file and load its weights (float32, eval mode)."""
    payload = read_weights_file(path)
    model = build_model(int(payload["latent_dim"]), int(payload["input_size"]), payload.get("channels", CHANNELS))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}
    model.load_state_dict(state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, payload


def apply_thread_setting() -> None:
    """torch.set_num_threads($SEARCHER_TORCH_THREADS) when that variable holds a positive integer.

    Imports torch: call it only where torch is used (training, backend="torch").
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return
    try:
        n = int(value)
    except ValueError:
        return
    if n > 0:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
