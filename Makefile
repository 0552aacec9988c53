# make setup : create .venv with the pinned stack (first time ~30 min: mmcv build)
# make demo  : set up, make the embedded data set, train + evaluate the CPU demo
# make test  : set up, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data/shapes

.PHONY: setup data demo test

setup:
	bash tools/setup_env.sh

data: setup
	$(PY) tools/dataset/make_shapes.py --out $(DATA)

demo: data
	$(PY) tools/train.py configs/classification/clusterformer-test_1xb16-30e_shapes.py \
		--work-dir work_dirs/demo_cls

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider
