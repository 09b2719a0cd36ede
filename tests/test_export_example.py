"""The worked example of docs/take_elsewhere.md (transformers' Deformable DETR on a converted pvt_det PVTv2
backbone) runs as written, at a tiny size: the doc's code block is executed with its settings replaced."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import pvt_det  # noqa: F401
from pvt_det.models.backbones import PVTv2
from pvt_det.tools.convert_weights import main as convert_main

pytest.importorskip('transformers')

DOC = Path(__file__).resolve().parents[1] / 'docs' / 'take_elsewhere.md'
TINY_DETR = ('dict(d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32, '
             'num_queries=10, encoder_attention_heads=2, decoder_attention_heads=2)')


def example_code(src: Path, dst: Path, detr_size: str = TINY_DETR, image_size: str = '(64, 96)') -> str:
    """The doc's Deformable DETR block with its settings lines replaced (each must be there, once)."""
    text = DOC.read_text()
    block = re.search(r'<!-- example: deformable_detr.*?-->\n```python\n(.*?)```', text, re.S)
    assert block, 'the worked example block is missing from docs/take_elsewhere.md'
    code = block[1]
    for name, value in (('SRC', repr(str(src))), ('DST', repr(str(dst))), ('DETR_SIZE', detr_size),
                        ('IMAGE_SIZE', image_size)):
        code, count = re.subn(rf'^{name} = .*$', f'{name} = {value}', code, flags=re.M)
        assert count == 1, name
    return code


@pytest.mark.slow
def test_deformable_detr_example_runs(tmp_path, capsys):
    generator = torch.Generator().manual_seed(0)
    backbone = PVTv2('b0')
    with torch.no_grad():
        for param in backbone.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    detector = {f'backbone.{key}': value for key, value in backbone.state_dict().items()}
    detector['neck.fpn_convs.0.conv.weight'] = torch.randn(8, 8, 3, 3)
    src, dst = tmp_path / 'retinanet.pth', tmp_path / 'pvt_v2_b0_hf'
    torch.save({'state_dict': detector, 'meta': {}}, src)
    assert convert_main([str(src), str(dst), '--to', 'hf']) == 0
    capsys.readouterr()
    exec(compile(example_code(src, dst), str(DOC), 'exec'), {'__name__': 'example'})
    lines = capsys.readouterr().out.splitlines()
    diffs = [float(line.rsplit(' ', 1)[1]) for line in lines if 'relative difference' in line]
    assert len(diffs) == 3 and max(diffs) < 1e-4, lines
    assert lines[-1] == 'logits (1, 10, 80) boxes (1, 10, 4)'
