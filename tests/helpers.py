"""Config fragments shared by the test files that train on generated data."""

# Fixed 64x64 inputs for Semantic FPN on generated ADE20K-layout data: no random resize/crop,
# so a few iterations on the same images must lower the loss.
SEG_64PX_PIPELINES = '''\
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
'''
