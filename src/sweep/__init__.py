"""sdxl-sweep: parameter sweeps for Stable Diffusion XL on diffusers, with labelled contact sheets."""

__version__ = "0.1.0"
