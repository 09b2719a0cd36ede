# The two set-up commands of the README: `make setup` and `make test`.
PY := .venv/bin/python

.PHONY: setup test demo demo-seg
setup:
	bash tools/setup_env.sh

test:
	$(PY) -m pytest -q tests

# Trains RetinaNet-PVTv2-b0 on a generated COCO-format dataset and prints COCO AP.
demo:
	$(PY) tools/demo.py det

# Trains Semantic FPN-PVTv2-b0 on a generated ADE20K-format dataset and prints mIoU.
demo-seg:
	$(PY) tools/demo.py seg
