"""mim finds mmcf: `mim search mmcf` lists every config with its task and
`mim list` shows the package (model-index.yml + one metafile.yml per task
folder, installed under mmcf/.mim)."""
import glob
import json
import os.path as osp
from importlib.metadata import distribution
import re
import shutil

import pytest
import yaml

from helpers import ROOT, python, run


def _mim():
    mim = shutil.which('mim') or osp.join(osp.dirname(python()), 'mim')
    if not osp.exists(mim):
        pytest.fail('mim is not installed: run `make setup`')
    return mim


def _configs():
    return sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '*', '*.py'))
                  if '_base_' not in p)


def test_every_config_is_in_the_model_index():
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    listed = {}
    for meta in index['Import']:
        with open(osp.join(ROOT, meta)) as f:
            for model in yaml.safe_load(f)['Models']:
                assert osp.isfile(osp.join(ROOT, model['Config'])), model['Config']
                assert model['Metadata']['Task'] and model['Results'], model['Name']
                assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]
                listed[model['Config']] = model
    assert sorted(listed) == _configs()


_MIM_HERE = """
import sys
import mim.commands.search as search
search.get_installed_path = lambda package: sys.argv[1]
search.cli.main(args=['mmcf'], prog_name='mim search')
"""


def _mim_search(tmp_path) -> str:
    """``mim search mmcf`` on this checkout. mim reads the configs of the
    installed mmcf (``<dist location>/mmcf/.mim``); a git worktree that shares
    another checkout's environment is not that location, so there mim is
    pointed at this checkout's configs and model-index.yml."""
    dist = distribution('mmcf')
    source = json.loads(dist.read_text('direct_url.json') or '{}').get('url', '')
    if osp.realpath(source.replace('file://', '', 1)) == osp.realpath(ROOT):
        return run([_mim(), 'search', 'mmcf'])[1]
    pkg = tmp_path / 'mmcf'
    (pkg / '.mim').mkdir(parents=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        (pkg / '.mim' / name).symlink_to(osp.join(ROOT, name))
    return run([python(), '-c', _MIM_HERE, str(pkg)])[1]


def test_mim_search_lists_every_config_with_its_task(tmp_path):
    out = _mim_search(tmp_path)
    blocks = out.split('config id: ')[1:]
    found = {}
    for block in blocks:
        name = block.split()[0]
        task = re.search(r'^task\s+(.+)$', block, re.M)
        found[name] = task.group(1).strip() if task else None
    expected = {osp.splitext(osp.basename(c))[0] for c in _configs()}
    assert set(found) == expected
    assert all(found.values()), found
    assert found['clusterformer-test_1xb8-1k_shapes-inst'] == \
        'object detection, instance segmentation'


def test_mim_list_shows_mmcf():
    _, out = run([_mim(), 'list'])
    assert re.search(r'^mmcf\s', out, re.M), out
