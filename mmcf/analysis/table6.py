"""The rows of Table 6 (§4.2): each ablation as the config options that make
it, with the paper's figures beside it.

One place for the rows, read by the row configs' test, the parameter table
(``tools/analysis/table6.py params``) and the CPU ablation runs
(``tools/analysis/table6.py demo``). ``options`` are the keys that differ
from the default model, relative to ``model.backbone`` (6a-e) or
``model.bbox_head`` (6f); the default row of each table has none and its
config is the default one.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

CLS_BASE = 'configs/classification/clusterformer-tiny_16xb64_in1k.py'
INST_BASE = 'configs/detection/clusterformer-tiny_8xb2-lsj-50e_coco.py'
#: the CPU demos the rows are run on (``test`` arch, embedded data)
CLS_DEMO = 'configs/classification/clusterformer-test_1xb32-12e_shapes.py'
INST_DEMO = 'configs/detection/clusterformer-test_1xb8-1k_shapes-inst.py'

TABLE_TITLES = {
    '6a': 'key components',
    '6b': 'number of recursions T',
    '6c': 'cluster center updating',
    '6d': 'head dimension',
    '6e': 'feature dispatching',
    '6f': 'decoder query initialization (instance segmentation)',
}


class Row(NamedTuple):
    table: str  # '6a' ... '6f'
    key: str  # short name, unique within the table; part of the config name
    label: str  # the row as the paper names it
    options: Dict[str, object]  # relative to model.backbone / model.bbox_head (nested)
    paper_params: Optional[float]  # millions, None where the paper gives none
    paper_metric: Optional[float]  # top-1 (6a-e) or mask AP (6f)
    default: bool = False  # the adopted design (red in the paper)

    @property
    def task(self) -> str:
        return 'inst' if self.table == '6f' else 'cls'

    @property
    def prefix(self) -> str:
        """Where ``options`` live in the config."""
        return 'model.bbox_head.' if self.task == 'inst' else 'model.backbone.'

    @property
    def name(self) -> str:
        """``<table>-<key>``, e.g. ``6c-kmeans``."""
        return f'{self.table}-{self.key}'

    @property
    def config(self) -> str:
        """The row's config (the default config for the default rows)."""
        if self.default:
            return INST_BASE if self.task == 'inst' else CLS_BASE
        if self.task == 'inst':
            return f'configs/ablations/clusterformer-tiny-{self.name}_8xb2-lsj-50e_coco.py'
        return f'configs/ablations/clusterformer-tiny-{self.name}_16xb64_in1k.py'

    def cfg_options(self, prefix: Optional[str] = None) -> Dict[str, object]:
        """``options`` as absolute config keys (nested dicts dotted:
        ``model.backbone.clustering_cfg.num_iters``)."""
        return flat_options(self.options, self.prefix if prefix is None else prefix)


def flat_options(options: Dict[str, object], prefix: str = '') -> Dict[str, object]:
    """Nested option dicts as dotted ``--cfg-options`` keys."""
    out: Dict[str, object] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            out.update(flat_options(value, f'{prefix}{key}.'))
        else:
            out[prefix + key] = value
    return out


def _row(table, key, label, options, params, metric, default=False) -> Row:
    return Row(table, key, label, options, params, metric, default)


ROWS: List[Row] = [
    # (a) key components
    _row('6a', 'baseline', 'Baseline', dict(with_clustering=False, with_dispatch=False),
         21.73, 74.59),
    _row('6a', 'rca', '+ Recurrent Cross-Attention Clustering', dict(with_dispatch=False),
         26.27, 80.57),
    _row('6a', 'dispatch', '+ Feature Dispatching', dict(with_clustering=False), 23.46, 78.58),
    _row('6a', 'both', 'ClusterFormer (both)', {}, 27.85, 81.31, default=True),
    # (b) recursions; the paper gives 27.85M for every T
    _row('6b', 't1', 'T = 1', dict(clustering_cfg=dict(num_iters=1)), 27.85, 81.06),
    _row('6b', 't2', 'T = 2', dict(clustering_cfg=dict(num_iters=2)), 27.85, 81.22),
    _row('6b', 't3', 'T = 3', {}, 27.85, 81.31, default=True),
    _row('6b', 't4', 'T = 4', dict(clustering_cfg=dict(num_iters=4)), 27.85, 81.33),
    # (c) center updating
    _row('6c', 'cosine', 'Cosine Similarity', dict(clustering_cfg=dict(type='CosineClustering')),
         23.88, 78.79),
    _row('6c', 'vanilla', 'Vanilla Cross-Attention [81]',
         dict(clustering_cfg=dict(type='VanillaCrossAttention')), 35.48, 79.67),
    _row('6c', 'criss-cross', 'Criss Cross-Attention [35]',
         dict(clustering_cfg=dict(type='CrissCrossClustering')), 34.16, 79.91),
    _row('6c', 'kmeans', 'K-Means [95]', dict(clustering_cfg=dict(type='KMeansClustering')),
         27.71, 80.96),
    _row('6c', 'recurrent', 'Recurrent Cross-Attention', {}, 27.85, 81.31, default=True),
    # (d) head dimension: heads fixed (3/6/12/24), width per head varies
    _row('6d', 'hd16', 'head dim 16', dict(clustering_cfg=dict(head_dim=16)), 17.25, 71.69),
    _row('6d', 'hd24', 'head dim 24', dict(clustering_cfg=dict(head_dim=24)), 22.88, 75.37),
    _row('6d', 'hd32', 'head dim 32', {}, 27.85, 81.31, default=True),
    _row('6d', 'hd40', 'head dim 40', dict(clustering_cfg=dict(head_dim=40)), 32.81, 82.21),
    _row('6d', 'hd48', 'head dim 48', dict(clustering_cfg=dict(head_dim=48)), 38.14, 82.40),
    # (e) feature dispatching
    _row('6e', 'none', 'None', dict(with_dispatch=False), 26.27, 80.57),
    _row('6e', 'fc', 'Vanilla FC Layer', dict(dispatch_cfg=dict(mode='fc')), 27.14, 80.83),
    _row('6e', 'confidence', 'Confidence-Based [68]', dict(dispatch_cfg=dict(mode='confidence')),
         26.81, 80.69),
    _row('6e', 'fc-sim', 'FC w/ Similarity [58]', dict(dispatch_cfg=dict(mode='fc_sim')),
         27.46, 80.96),
    _row('6e', 'eq6', 'Ours (Eq. 6)', {}, 27.85, 81.31, default=True),
    # (f) decoder query initialization, instance segmentation (mask AP)
    _row('6f', 'free', 'Free Parameters', dict(center_init='free'), None, 44.2),
    _row('6f', 'feature', 'Direct Feature Embedding [17]', dict(center_init='feature'),
         None, 44.5),
    _row('6f', 'mixed-selection', 'Mixed Query Selection [44]',
         dict(center_init='mixed_selection'), None, 44.9),
    _row('6f', 'scene-adaptive', 'Scene-Adoptive Embedding [47]',
         dict(center_init='scene_adaptive'), None, 45.1),
    _row('6f', 'encoder', 'Centers from Encoder (Ours)', {}, None, 45.9, default=True),
]


def rows(tables: Optional[List[str]] = None) -> List[Row]:
    """The rows of the given tables ('6a', ...), all by default."""
    if tables:
        unknown = sorted(set(tables) - set(TABLE_TITLES))
        if unknown:
            raise KeyError(f'unknown Table 6 parts {unknown}; choose from {sorted(TABLE_TITLES)}')
    return [r for r in ROWS if not tables or r.table in tables]


def find_row(name: str) -> Row:
    """The row called ``name`` (``'6c-kmeans'``)."""
    for r in ROWS:
        if r.name == name:
            return r
    raise KeyError(f'no Table 6 row {name!r}; rows: {[r.name for r in ROWS]}')
