# What mmdet's Mask2Former recipe sets per backbone, written for PVTv2's module names (its Swin configs spell
# the same for Swin's): the whole backbone trains at 0.1x the lr, and its norm layers at 0.1x with no weight
# decay. mmengine matches custom_keys as substrings, longest first, so each norm needs a key longer than
# 'backbone': one key per block, as the Swin configs have ('...blocks.N.norm' matches norm1 and norm2;
# 'attn.norm' is the spatial-reduction norm; 'stages.N.norm.' the stage's last). PVTv2 has no position
# embeddings, so Swin's absolute_pos_embed / relative_position_bias_table keys have no counterpart. The
# head's keys (query_embed, query_feat, level_embed) are the recipe's, unchanged.
mask2former_pvt_v2_b2_custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
    'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
    'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
    **{f'backbone.stages.{stage}.{norm}': dict(lr_mult=0.1, decay_mult=0.0)
       for stage in range(4) for norm in ('patch_embed.norm', 'norm.')},
    **{f'backbone.stages.{stage}.blocks.{block}.{norm}': dict(lr_mult=0.1, decay_mult=0.0)
       for stage, depth in enumerate([3, 4, 6, 3]) for block in range(depth) for norm in ('norm', 'attn.norm')},
}
# B5: the same with its depths (3, 6, 40, 3).
mask2former_pvt_v2_b5_custom_keys = {
    **mask2former_pvt_v2_b2_custom_keys,
    **{f'backbone.stages.{stage}.blocks.{block}.{norm}': dict(lr_mult=0.1, decay_mult=0.0)
       for stage, depth in enumerate([3, 6, 40, 3]) for block in range(depth) for norm in ('norm', 'attn.norm')},
}
