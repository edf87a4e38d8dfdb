"""PetSeg service: loads an exported SavedModel and serves pet segmentation over HTTP."""
