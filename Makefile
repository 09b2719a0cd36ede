# The two set-up commands of the README: `make setup` and `make test`.
PY := .venv/bin/python

.PHONY: setup test demo demo-seg swap-zoo demo-depth demo-panoptic
setup:
	bash tools/setup_env.sh

# pytest-xdist: one worker per core (2 on the CI machine); tests/conftest.py gives each worker its share of
# the torch threads. `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2
test:
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal tests

# Trains RetinaNet-PVTv2-b0 on a generated COCO-format dataset and prints COCO AP.
demo:
	$(PY) tools/demo.py det

# Trains Semantic FPN-PVTv2-b0 on a generated ADE20K-format dataset and prints mIoU.
demo-seg:
	$(PY) tools/demo.py seg

# Trains GLPN-PVTv2-b0 on a generated NYU-layout depth dataset and prints depth metrics against the training mean.
demo-depth:
	$(PY) tools/demo.py depth

# Trains Mask2Former-PVTv2-b0 on a generated COCO panoptic-layout dataset and prints PQ / SQ / RQ.
demo-panoptic:
	$(PY) tools/demo.py panoptic

# The backbone swap walked over mmdet's and mmseg's whole config zoos (one ResNet-50 config per family;
# hours on a CPU); the table of results is appended to swap_zoo_table.md (docs/swap_resnet.md).
swap-zoo:
	PVT_DET_SWAP_ZOO=all PVT_DET_SWAP_ZOO_TABLE=swap_zoo_table.md $(PY) -m pytest -q tests/test_swap_zoo.py
