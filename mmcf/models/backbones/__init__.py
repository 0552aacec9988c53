from mmengine.registry import MODELS

from .cluster_block import ClusterBlock, ClusterStage
from .clusterformer import ClusterFormer

# Registered in mmengine's root registry: the model registries of mmpretrain,
# mmdet and mmseg are its children and look a missing type up in their
# parent, so `backbone=dict(type='ClusterFormer')` builds from all three.
MODELS.register_module(module=ClusterFormer)

__all__ = ['ClusterFormer', 'ClusterStage', 'ClusterBlock']
