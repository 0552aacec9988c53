# make setup : create .venv with the pinned stack (first time 10-30 min: mmcv build)
# make demo  : set up, make the embedded data set, train + evaluate the CPU
#              semantic segmentation demo (about 5 minutes on 2 cores)
# make demo-cls : the classification demo (about 2 minutes, top-1 about 95%)
# make demo-det : the detection + instance segmentation demo (about 4 minutes, bbox AP ~14-16, segm AP ~19-20)
# make demo-pan : the panoptic segmentation demo (about 7 minutes, PQ about 50-52)
# make test  : set up, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data/shapes

.PHONY: setup data demo demo-cls demo-det demo-pan test

setup:
	bash tools/setup_env.sh

data: setup
	$(PY) tools/dataset/make_shapes.py --out $(DATA)

# one thread per process: two threads oversubscribe a 2-core machine
demo: data
	OMP_NUM_THREADS=1 $(PY) tools/train.py configs/segmentation/clusterformer-test_1xb8-1k_shapes-64x64.py \
		--work-dir work_dirs/demo_seg

demo-cls: data
	OMP_NUM_THREADS=1 $(PY) tools/train.py configs/classification/clusterformer-test_1xb32-12e_shapes.py \
		--work-dir work_dirs/demo_cls

demo-det: data
	OMP_NUM_THREADS=1 $(PY) tools/train.py configs/detection/clusterformer-test_1xb8-1k_shapes-inst.py \
		--work-dir work_dirs/demo_det

demo-pan: data
	OMP_NUM_THREADS=1 $(PY) tools/train.py configs/panoptic/clusterformer-test_1xb8-1k_shapes-panoptic.py \
		--work-dir work_dirs/demo_pan

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider
