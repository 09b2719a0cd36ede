"""Pictures of what a backbone does: its stage maps and the attention of query points (``tools/vis_features.py``).

* :mod:`.attention` — a probe that captures the attention modules' inputs during one normal forward and computes,
  for the chosen queries only, their real attention weights; the keys' footprints back on the stage's token grid;
* :mod:`.features` — stage maps as a channel mean or a PCA to RGB;
* :mod:`.layout` — the one-PNG grid: the image, then one column per stage; a row of maps, a row per query.
"""
