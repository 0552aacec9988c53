from mmengine.registry import MODELS

from .clusterformer import ClusterBlock, ClusterFormer, ClusterStage

# Registered in mmengine's root registry: the model registries of mmpretrain,
# mmdet and mmseg are its children and look a missing type up in their
# parent, so `backbone=dict(type='ClusterFormer')` builds from all three.
MODELS.register_module(module=ClusterFormer)

__all__ = ['ClusterFormer', 'ClusterStage', 'ClusterBlock']
