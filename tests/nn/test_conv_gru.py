import pytest
import torch
import torch.nn.functional as F

from pyg_wsss.nn import ConvGRUCell


def _reference(cell, x, h):
    """Hand-written ConvGRU of the authors' code (reset gate before the candidate conv)."""
    ch = cell.hidden_channels
    w, b = cell.conv_gates.weight, cell.conv_gates.bias
    pad = cell.kernel_size // 2
    xh = torch.cat([x, h], 1)
    z = torch.sigmoid(F.conv2d(xh, w[:ch], b[:ch], padding=pad))
    r = torch.sigmoid(F.conv2d(xh, w[ch:], b[ch:], padding=pad))
    n = torch.tanh(
        F.conv2d(torch.cat([x, r * h], 1), cell.conv_cand.weight, cell.conv_cand.bias, padding=pad)
    )
    return (1 - z) * h + z * n


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_matches_hand_written_reference(kernel_size, device):
    cell = ConvGRUCell(3, 5, kernel_size=kernel_size).to(device).double()
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64, device=device)
    h = torch.randn(2, 5, 4, 6, dtype=torch.float64, device=device)
    assert torch.allclose(cell(x, h), _reference(cell, x, h), atol=1e-12)
    assert torch.allclose(cell(x), _reference(cell, x, torch.zeros_like(h)), atol=1e-12)


def _gru_from_cell(cell):
    """nn.GRUCell equal to the reset='after' ConvGRU with 1x1 kernels (z <-> 1 - z)."""
    cin, ch = cell.input_channels, cell.hidden_channels
    gru = torch.nn.GRUCell(cin, ch).double()
    wg, bg = cell.conv_gates.weight[..., 0, 0], cell.conv_gates.bias
    wz, wr, bz, br = wg[:ch], wg[ch:], bg[:ch], bg[ch:]
    with torch.no_grad():
        # GRUCell rows: r, z, n; its z is our 1 - z = sigmoid(-(...))
        wnx, wnh = cell.conv_cand_x.weight[..., 0, 0], cell.conv_cand_h.weight[..., 0, 0]
        gru.weight_ih.copy_(torch.cat([wr[:, :cin], -wz[:, :cin], wnx]))
        gru.weight_hh.copy_(torch.cat([wr[:, cin:], -wz[:, cin:], wnh]))
        gru.bias_ih.copy_(torch.cat([br, -bz, cell.conv_cand_x.bias]))
        gru.bias_hh.copy_(torch.cat([torch.zeros(ch), torch.zeros(ch), cell.conv_cand_h.bias]))
    return gru


def test_reset_after_equals_torch_grucell():
    cell = ConvGRUCell(3, 4, reset="after").double()
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    h = torch.randn(2, 4, 2, 3, dtype=torch.float64)
    gru = _gru_from_cell(cell)
    ref = gru(x.permute(0, 2, 3, 1).reshape(-1, 3), h.permute(0, 2, 3, 1).reshape(-1, 4))
    out = cell(x, h).permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.allclose(out, ref, atol=1e-12)


def test_code_form_is_not_grucell():
    # NOTES.md check 6: same parameters, reset applied before vs after the hidden map
    after = ConvGRUCell(3, 4, reset="after").double()
    before = ConvGRUCell(3, 4, reset="before").double()
    with torch.no_grad():
        before.conv_gates.load_state_dict(after.conv_gates.state_dict())
        before.conv_cand.weight.copy_(
            torch.cat([after.conv_cand_x.weight, after.conv_cand_h.weight], 1)
        )
        before.conv_cand.bias.copy_(after.conv_cand_x.bias + after.conv_cand_h.bias)
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    h = torch.randn(2, 4, 2, 2, dtype=torch.float64)
    assert not torch.allclose(before(x, h), after(x, h), atol=1e-3)


def test_gradcheck_and_repr(tmp_path):
    cell = ConvGRUCell(2, 3, kernel_size=3).double()
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cell, (x, h))
    assert str(cell) == "ConvGRUCell(2, 3, kernel_size=3, reset='before')"
    torch.save(cell.state_dict(), tmp_path / "g.pt")
    other = ConvGRUCell(2, 3, kernel_size=3).double()
    other.load_state_dict(torch.load(tmp_path / "g.pt"))
    assert torch.allclose(other(x, h), cell(x, h))


def test_bad_input():
    with pytest.raises(ValueError):
        ConvGRUCell(0, 3)
    with pytest.raises(ValueError):
        ConvGRUCell(2, 3, kernel_size=2)
    with pytest.raises(ValueError):
        ConvGRUCell(2, 3, reset="middle")
    cell = ConvGRUCell(2, 3)
    with pytest.raises(ValueError):
        cell(torch.randn(1, 3, 2, 2))
    with pytest.raises(ValueError):
        cell(torch.randn(1, 2, 2, 2), torch.randn(1, 3, 2, 3))
    with pytest.raises(ValueError):
        cell(torch.randn(2, 2, 2))
    with pytest.raises(TypeError):
        cell(torch.ones(1, 2, 2, 2, dtype=torch.long))
