"""tools/analysis/table6.py: the parameter table beside the paper's and the
rows as candidates of the demo runner (no training here)."""
import pytest

from helpers import load_tool


def test_params_table_of_6b_counts_every_row():
    tool = load_tool('analysis/table6')
    text = tool.main(['params', '--tables', '6b'])
    lines = text.splitlines()[2:]
    assert len(lines) == 4
    for line in lines:  # T adds no parameters, here as in the paper
        assert '| 27.85M | 28.27M | +0.42M (+1.5%) |' in line, line


def test_rows_become_demo_candidates_with_the_test_arch_head_width():
    tool = load_tool('analysis/table6')
    from mmcf.analysis.table6 import rows
    selected = [r for r in rows(['6d', '6c']) if not r.default]
    task = tool.register_demo_candidates('cls', selected)
    import clustering_candidates as cc
    cands = cc.CANDIDATES[task]
    # tiny's 32 is the test arch's 16
    assert cands['6d-hd48'][1] == {'clustering_cfg': {'head_dim': 24}}
    assert cands['6c-kmeans'][1] == {'clustering_cfg': {'type': 'KMeansClustering'}}
    opts = cc._options(cc.TASKS[task], cands['6c-kmeans'][1], 0, 'data/shapes')
    assert "model.backbone.clustering_cfg.type='KMeansClustering'" in opts
    inst = tool.register_demo_candidates('inst', rows(['6f']))
    assert cc.TASKS[inst]['metric'] == 'coco/segm_mAP'
    assert cc.CANDIDATES[inst]['6f-mixed-selection'][1] == {'center_init': 'mixed_selection'}
    with pytest.raises(SystemExit):
        tool.main(['demo', '--task', 'cls', '--rows', '6f-free'])
