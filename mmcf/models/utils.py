"""Small helpers shared by mmcf's OpenMMLab modules."""
from typing import List, Optional, Union


def loads_pretrained(init_cfg: Optional[Union[dict, List[dict]]]) -> bool:
    """Whether ``init_cfg`` (a dict or a list of them) loads a checkpoint,
    in which case a module skips its own random initialisation."""
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)
