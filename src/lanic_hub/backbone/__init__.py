"""Backbones: any open_clip model (BiomedCLIP first), resolved offline, and the phantom CLIP."""

from .resolve import BIOMEDCLIP, Backbone, BackboneError, load_backbone, read_open_clip_config

__all__ = ["BIOMEDCLIP", "Backbone", "BackboneError", "load_backbone", "read_open_clip_config"]
