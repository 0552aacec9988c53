"""Install mmcf, the ClusterFormer plugin suite for OpenMMLab.

Like the OpenMMLab codebases, the package carries
``mmcf/.mim/{configs,tools,model-index.yml}`` so that ``mim train mmcf
<config>``, ``mim test mmcf ...`` and ``mim search mmcf`` find our scripts,
configs and model index: symbolic links to the repository's files for an
editable install, copies for a wheel.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'mmcf', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def read_requirements(name: str) -> list:
    """Requirement lines of requirements/<name>.txt, comments dropped."""
    reqs = []
    with open(osp.join(HERE, 'requirements', name), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-r'):
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Put configs/, tools/ and model-index.yml under mmcf/.mim for mim.

    Editable installs (``pip install -e``) get symbolic links, so edits to the
    repository are seen at once; every other build gets copies.
    """
    editable = any(cmd in sys.argv for cmd in ('develop', 'editable_wheel'))
    building = editable or any(
        cmd in sys.argv for cmd in ('install', 'build', 'build_py', 'bdist_wheel', 'sdist'))
    if not building:
        return
    mim_root = osp.join(HERE, 'mmcf', '.mim')
    os.makedirs(mim_root, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        dst = osp.join(mim_root, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if editable:
            os.symlink(osp.relpath(src, mim_root), dst, target_is_directory=osp.isdir(src))
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmcf',
        version=read_version(),
        description='ClusterFormer for OpenMMLab: classification, detection, '
        'instance, semantic and panoptic segmentation',
        long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        keywords='computer vision, clustering, transformer, OpenMMLab',
        packages=find_packages(include=('mmcf', 'mmcf.*')),
        include_package_data=False,
        package_data={'mmcf': ['.mim/configs/**/*.py', '.mim/configs/**/*.yml',
                               '.mim/tools/**/*.py', '.mim/tools/**/*.sh',
                               '.mim/model-index.yml']},
        python_requires='>=3.9',
        license='Apache License 2.0',
        install_requires=read_requirements('runtime.txt'),
        extras_require={'tests': read_requirements('tests.txt')},
        zip_safe=False)
