"""The bilinear resize as two products (mmcf.models.utils.resize_bilinear)
against F.interpolate, in value and gradient."""
import pytest
import torch
import torch.nn.functional as F

from mmcf.models.utils import interpolation_matrix, resize_bilinear


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('src,dst', [((24, 32), (96, 128)), ((5, 7), (17, 3)),
                                     ((1, 4), (6, 1)), ((9, 9), (9, 9))])
def test_resize_bilinear_equals_interpolate(src, dst, align_corners):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *src, dtype=torch.float64, generator=g, requires_grad=True)
    ref = F.interpolate(x, size=dst, mode='bilinear', align_corners=align_corners)
    out = resize_bilinear(x, dst, align_corners)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn(ref.shape, dtype=torch.float64, generator=g)
    g_ref, = torch.autograd.grad((ref * w).sum(), x)
    g_out, = torch.autograd.grad((out * w).sum(), x)
    torch.testing.assert_close(g_out, g_ref, rtol=1e-12, atol=1e-12)


def test_interpolation_matrix_rows_are_convex_weights():
    for align in (False, True):
        a = interpolation_matrix(7, 20, align, dtype=torch.float64)
        assert a.shape == (20, 7) and (a >= 0).all()
        torch.testing.assert_close(a.sum(1), torch.ones(20, dtype=torch.float64))
        assert ((a > 0).sum(1) <= 2).all()  # two neighbours at most


def test_cached_matrix_made_under_inference_mode_still_trains():
    x = torch.randn(1, 2, 3, 5)
    with torch.inference_mode():
        resize_bilinear(x, (6, 10))
    y = x.clone().requires_grad_()
    resize_bilinear(y, (6, 10)).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
