"""The component configs of SDXL base 1.0 and of the tiny built-in models, as plain data (no torch).

sweep.models.builtin builds pipelines from them; sweep.models.facts reads a built-in model's facts (native size,
scheduler, text layers) from them before anything heavy is imported.
"""

from __future__ import annotations

from typing import Any

#: Base seed of the weight init; each component adds its own offset so they do not share a stream.
TINY_SEED = 0
#: Weights of `tiny-alt`, the second built-in tiny checkpoint (far from TINY_SEED's component offsets 0-4).
TINY_ALT_SEED = 100

# --------------------------------------------------------------------------------------------------
# Published component configs of stabilityai/stable-diffusion-xl-base-1.0 (architecture fields only).
# --------------------------------------------------------------------------------------------------

SDXL_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "class_embed_type": None,
    "class_embeddings_concat": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": 2048,
    "cross_attention_norm": None,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_only_cross_attention": None,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_attention_heads": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default",
    "sample_size": 128,
    "time_cond_proj_dim": None,
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "time_embedding_type": "positional",
    "timestep_post_act": None,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "upcast_attention": None,
    "use_linear_projection": True,
}

SDXL_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "force_upcast": True,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

# CLIP ViT-L/14 text tower.
SDXL_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}

# OpenCLIP ViT-bigG/14 text tower with projection.
SDXL_TEXT_ENCODER_2_CONFIG: dict[str, Any] = {
    **SDXL_TEXT_ENCODER_CONFIG,
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
}

SDXL_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

# --------------------------------------------------------------------------------------------------
# Tiny SDXL-architecture configs: attention only at the lowest UNet level and no VAE attention, so
# that 1024x1024 stays cheap on a CPU (self-attention over 128x128 latents would dominate otherwise).
# --------------------------------------------------------------------------------------------------

TINY_TE_HIDDEN = 32
TINY_TE2_HIDDEN = 32
TINY_TE2_PROJECTION = 32
TINY_ADD_TIME_DIM = 8

TINY_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 16,  # native 16 * 8 = 128 px
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": [16, 32, 32],
    "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_num_groups": 8,
    "attention_head_dim": [2, 4, 8],
    "transformer_layers_per_block": 1,
    "use_linear_projection": True,
    # The two text encoders' penultimate hidden states are concatenated along the feature axis.
    "cross_attention_dim": TINY_TE_HIDDEN + TINY_TE2_HIDDEN,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": TINY_ADD_TIME_DIM,
    # 6 micro-conditioning ints (original size, crop coords, target size) + pooled text embedding.
    "projection_class_embeddings_input_dim": 6 * TINY_ADD_TIME_DIM + TINY_TE2_PROJECTION,
}

TINY_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    # Four blocks -> vae_scale_factor 8, as in SDXL.
    "block_out_channels": [8, 8, 16, 16],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "sample_size": 128,
    "scaling_factor": 0.13025,
    "mid_block_add_attention": False,
}

# --------------------------------------------------------------------------------------------------
# Tiny configs with SDXL base's block layout (for single-file checkpoint round trips). The two text encoders
# have different widths: from_single_file tells them apart by the width of their position embeddings.
# --------------------------------------------------------------------------------------------------

TINY_LAYOUT_TE_HIDDEN = 32
TINY_LAYOUT_TE2_HIDDEN = 48
TINY_LAYOUT_TE2_PROJECTION = 32

TINY_LAYOUT_UNET_CONFIG: dict[str, Any] = {
    **TINY_UNET_CONFIG,
    "sample_size": 8,  # native 8 * 8 = 64 px
    "layers_per_block": 2,
    "block_out_channels": [16, 32, 32],
    "down_block_types": list(SDXL_UNET_CONFIG["down_block_types"]),
    "up_block_types": list(SDXL_UNET_CONFIG["up_block_types"]),
    "attention_head_dim": [2, 2, 4],
    "transformer_layers_per_block": [1, 1, 2],
    "cross_attention_dim": TINY_LAYOUT_TE_HIDDEN + TINY_LAYOUT_TE2_HIDDEN,
    "projection_class_embeddings_input_dim": 6 * TINY_ADD_TIME_DIM + TINY_LAYOUT_TE2_PROJECTION,
}

TINY_LAYOUT_VAE_CONFIG: dict[str, Any] = {
    **TINY_VAE_CONFIG,
    "block_out_channels": [8, 16, 16, 16],
    "layers_per_block": 2,
    "sample_size": 64,
    "mid_block_add_attention": True,
}
