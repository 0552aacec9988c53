from .necks import ClusterCenterNeck

__all__ = ['ClusterCenterNeck']
