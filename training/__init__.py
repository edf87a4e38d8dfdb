"""Offline training package: Oxford-IIIT Pet -> U-Net (MobileNetV2 encoder) -> evaluated SavedModel."""

CLASS_NAMES = ("pet", "background", "border")
# Display colours for the three classes (RGB); they travel to the service through metadata.json.
CLASS_COLORS = ((255, 120, 0), (40, 40, 160), (255, 230, 60))
NUM_CLASSES = len(CLASS_NAMES)
