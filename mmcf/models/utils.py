"""Small helpers shared by mmcf's OpenMMLab modules."""
import contextlib
import logging
from typing import Iterator, List, Optional, Union

from mmengine.logging import MMLogger


def loads_pretrained(init_cfg: Optional[Union[dict, List[dict]]]) -> bool:
    """Whether ``init_cfg`` (a dict or a list of them) loads a checkpoint,
    in which case a module skips its own random initialisation."""
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)


@contextlib.contextmanager
def quiet_init_report() -> Iterator[None]:
    """Silence mmengine's per-parameter initialisation report when it would
    go to the console.

    mmengine's ``BaseModule.init_weights`` of the outermost module writes one
    "The value is the same before and after calling `init_weights`" entry
    per parameter: to the log file inside a runner (kept), and as hundreds of
    INFO lines on the console when a model is built outside one (dropped).
    """
    logger = MMLogger.get_current_instance()
    if any(isinstance(h, logging.FileHandler) for h in logger.handlers):
        yield
        return
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
