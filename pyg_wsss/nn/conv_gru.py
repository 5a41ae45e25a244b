"""Convolutional GRU cell (the node update of Group-WSSS, G 2)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_positive, check_tensor

__all__ = ["ConvGRUCell"]


class ConvGRUCell(nn.Module):
    r"""Convolutional GRU cell (Ballas et al., 2016), the node update :math:`F_A` of
    Group-WSSS (G 2) with the message :math:`\mathbf{x} = \mathbf{m}_i` as input and the node
    state :math:`\mathbf{h} = \mathbf{h}_i` as hidden state:

    .. math::
        \mathbf{z} &= \sigma(\mathbf{W}_z * [\mathbf{x}, \mathbf{h}] + \mathbf{b}_z), \qquad
        \mathbf{r} = \sigma(\mathbf{W}_r * [\mathbf{x}, \mathbf{h}] + \mathbf{b}_r), \\
        \mathbf{n} &= \tanh(\mathbf{W}_n * [\mathbf{x}, \mathbf{r} \odot \mathbf{h}] +
        \mathbf{b}_n), \\
        \mathbf{h}' &= (1 - \mathbf{z}) \odot \mathbf{h} + \mathbf{z} \odot \mathbf{n},

    with :math:`*` a ``kernel_size`` convolution (``"same"`` padding). This is the
    ``reset="before"`` form of the authors' code (and of Cho et al. / Ballas et al.): the
    reset gate multiplies the hidden state *before* the candidate convolution. It is **not**
    :class:`torch.nn.GRUCell` (NOTES.md check 6). ``reset="after"`` is the cuDNN /
    :class:`~torch.nn.GRUCell` form
    :math:`\mathbf{n} = \tanh(\mathbf{W}_{xn} * \mathbf{x} + \mathbf{b}_{xn} + \mathbf{r}
    \odot (\mathbf{W}_{hn} * \mathbf{h} + \mathbf{b}_{hn}))`; with ``kernel_size=1`` it
    equals ``nn.GRUCell`` per pixel (with :math:`\mathbf{z} \leftrightarrow` GRUCell's
    :math:`1 - \mathbf{z}`, i.e. negated update-gate weights).

    Args:
        input_channels: Channels of the input ``x``.
        hidden_channels: Channels of the hidden state ``h``.
        kernel_size: Odd convolution kernel size (1 in the authors' code).
        bias: Learn biases.
        reset: ``"before"`` (default, code) or ``"after"`` (``nn.GRUCell`` form).

    Shapes:
        - **input:** ``x`` :math:`(N, C_{in}, H, W)`, ``h`` :math:`(N, C_{hid}, H, W)` or
          ``None`` (zeros)
        - **output:** :math:`(N, C_{hid}, H, W)`
    """

    def __init__(
        self,
        input_channels: int,
        hidden_channels: int,
        kernel_size: int = 1,
        bias: bool = True,
        reset: str = "before",
    ) -> None:
        super().__init__()
        check_positive(input_channels, "input_channels", integer=True)
        check_positive(hidden_channels, "hidden_channels", integer=True)
        check_positive(kernel_size, "kernel_size", integer=True)
        if kernel_size % 2 == 0:
            raise ValueError(f"'kernel_size' must be odd, got {kernel_size}")
        check_choice(reset, ("before", "after"), "reset")
        self.input_channels = int(input_channels)
        self.hidden_channels = int(hidden_channels)
        self.kernel_size = int(kernel_size)
        self.reset = reset
        cin, ch, pad = self.input_channels, self.hidden_channels, self.kernel_size // 2
        self.conv_gates = nn.Conv2d(cin + ch, 2 * ch, kernel_size, padding=pad, bias=bias)
        if reset == "before":
            self.conv_cand = nn.Conv2d(cin + ch, ch, kernel_size, padding=pad, bias=bias)
            self.register_module("conv_cand_x", None)
            self.register_module("conv_cand_h", None)
        else:
            self.register_module("conv_cand", None)
            self.conv_cand_x = nn.Conv2d(cin, ch, kernel_size, padding=pad, bias=bias)
            self.conv_cand_h = nn.Conv2d(ch, ch, kernel_size, padding=pad, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.conv_gates, self.conv_cand, self.conv_cand_x, self.conv_cand_h):
            if m is not None:
                m.reset_parameters()

    def forward(self, x: Tensor, h: Optional[Tensor] = None) -> Tensor:
        check_tensor(x, "x", ndim=4, floating=True, finite=True)
        if x.size(1) != self.input_channels:
            raise ValueError(
                f"'x' must have {self.input_channels} channels, got shape {tuple(x.shape)}"
            )
        if h is None:
            h = x.new_zeros(x.size(0), self.hidden_channels, x.size(2), x.size(3))
        check_tensor(h, "h", ndim=4, floating=True, finite=True)
        if h.shape != (x.size(0), self.hidden_channels, x.size(2), x.size(3)):
            raise ValueError(
                f"'h' must have shape {(x.size(0), self.hidden_channels, *x.shape[2:])}, "
                f"got {tuple(h.shape)}"
            )
        z, r = torch.sigmoid(self.conv_gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        if self.reset == "before":
            n = torch.tanh(self.conv_cand(torch.cat([x, r * h], dim=1)))
        else:
            n = torch.tanh(self.conv_cand_x(x) + r * self.conv_cand_h(h))
        return (1 - z) * h + z * n

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.input_channels}, {self.hidden_channels}, "
            f"kernel_size={self.kernel_size}, reset={self.reset!r})"
        )
