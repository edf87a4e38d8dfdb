"""The export contract: what `training/` writes and `app/` reads, written down once.

Both halves import this package and never each other. It holds the names and order of the classes,
their colours, the SavedModel signature and tensor names, the optional species/breed outputs, and
the check the service runs on a model's `metadata.json`. The imaging both halves must do the same
way (decoding a photo into the model's input, probabilities back to labels at the photo's size)
lives beside it in `petseg_contract.photos` and `petseg_contract.masks`. docs/contract.md is its
prose form.
"""

from __future__ import annotations

from typing import Any

from PIL import ImageColor

# Bump when an export stops being readable by a service written for the previous version. Optional
# outputs (species, breed) are additive: a service ignores outputs it does not know.
CONTRACT_VERSION = 1
SUPPORTED_CONTRACT_VERSIONS = frozenset({1})

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "images"  # uint8 [N, S, S, 3], RGB, the whole photo resized (photos.model_input)
OUTPUT_NAME = "probabilities"  # float32 [N, S, S, NUM_CLASSES], softmax over classes
SPECIES_OUTPUT = "species_probabilities"  # float32 [N, 2], optional
BREED_OUTPUT = "breed_probabilities"  # float32 [N, 37], optional

# Class index = official trimap value - 1.
CLASS_NAMES = ("pet", "background", "border")
PET, BACKGROUND, BORDER = range(3)
NUM_CLASSES = len(CLASS_NAMES)
# Display colours; they travel to the service (and the page) through metadata.json.
CLASS_COLORS = tuple(ImageColor.getrgb(c) for c in ("#ff7800", "#2828a0", "#ffe63c"))

SPECIES_NAMES = ("cat", "dog")
# The 37 breeds in the order of the official CLASS-ID (annotations/list.txt): (dataset key, name, species).
# The key is how the dataset's file names spell the breed; the name is how people do.
BREEDS: tuple[tuple[str, str, str], ...] = (
    ("Abyssinian", "Abyssinian", "cat"),
    ("american_bulldog", "American Bulldog", "dog"),
    ("american_pit_bull_terrier", "American Pit Bull Terrier", "dog"),
    ("basset_hound", "Basset Hound", "dog"),
    ("beagle", "Beagle", "dog"),
    ("Bengal", "Bengal", "cat"),
    ("Birman", "Birman", "cat"),
    ("Bombay", "Bombay", "cat"),
    ("boxer", "Boxer", "dog"),
    ("British_Shorthair", "British Shorthair", "cat"),
    ("chihuahua", "Chihuahua", "dog"),
    ("Egyptian_Mau", "Egyptian Mau", "cat"),
    ("english_cocker_spaniel", "English Cocker Spaniel", "dog"),
    ("english_setter", "English Setter", "dog"),
    ("german_shorthaired", "German Shorthaired", "dog"),
    ("great_pyrenees", "Great Pyrenees", "dog"),
    ("havanese", "Havanese", "dog"),
    ("japanese_chin", "Japanese Chin", "dog"),
    ("keeshond", "Keeshond", "dog"),
    ("leonberger", "Leonberger", "dog"),
    ("Maine_Coon", "Maine Coon", "cat"),
    ("miniature_pinscher", "Miniature Pinscher", "dog"),
    ("newfoundland", "Newfoundland", "dog"),
    ("Persian", "Persian", "cat"),
    ("pomeranian", "Pomeranian", "dog"),
    ("pug", "Pug", "dog"),
    ("Ragdoll", "Ragdoll", "cat"),
    ("Russian_Blue", "Russian Blue", "cat"),
    ("saint_bernard", "Saint Bernard", "dog"),
    ("samoyed", "Samoyed", "dog"),
    ("scottish_terrier", "Scottish Terrier", "dog"),
    ("shiba_inu", "Shiba Inu", "dog"),
    ("Siamese", "Siamese", "cat"),
    ("Sphynx", "Sphynx", "cat"),
    ("staffordshire_bull_terrier", "Staffordshire Bull Terrier", "dog"),
    ("wheaten_terrier", "Wheaten Terrier", "dog"),
    ("yorkshire_terrier", "Yorkshire Terrier", "dog"),
)
BREED_KEYS = tuple(key for key, _, _ in BREEDS)
BREED_NAMES = tuple(name for _, name, _ in BREEDS)
BREED_SPECIES = tuple(SPECIES_NAMES.index(species) for _, _, species in BREEDS)


class ContractError(ValueError):
    """A model's metadata.json breaks the export contract; the message says how."""


def classes_metadata() -> list[dict[str, Any]]:
    """The `classes` list of metadata.json: index, name and colour of each class, in contract order."""
    return [
        {"index": i, "name": name, "color": list(color)}
        for i, (name, color) in enumerate(zip(CLASS_NAMES, CLASS_COLORS, strict=True))
    ]


def labels_metadata() -> dict[str, Any]:
    """The `species` and `breeds` lists of metadata.json, for a model with the optional outputs."""
    return {
        "species": [{"index": i, "name": name} for i, name in enumerate(SPECIES_NAMES)],
        "breeds": [
            {"index": i, "key": key, "name": name, "species": species}
            for i, (key, name, species) in enumerate(BREEDS)
        ],
    }


def check_metadata(metadata: dict[str, Any]) -> None:
    """Raise ContractError unless `metadata` is one this contract's readers understand.

    Checks the contract version, the keys a reader needs and the class order (a model trained with
    another order would silently swap pet and background).
    """
    missing = [
        k for k in ("contract_version", "name", "version", "input_size", "classes") if k not in metadata
    ]
    if missing:
        raise ContractError(f"metadata.json lacks {', '.join(missing)}")
    version = metadata["contract_version"]
    if version not in SUPPORTED_CONTRACT_VERSIONS:
        raise ContractError(
            f"contract_version {version!r} is not one this code reads "
            f"({', '.join(map(str, sorted(SUPPORTED_CONTRACT_VERSIONS)))})"
        )
    classes = metadata["classes"]
    if not isinstance(classes, list) or any(not isinstance(c, dict) or "color" not in c for c in classes):
        raise ContractError("'classes' must be a list of {index, name, color}")
    names = tuple(c.get("name") for c in classes)
    if names != CLASS_NAMES:
        raise ContractError(f"classes are {list(names)}, the contract's order is {list(CLASS_NAMES)}")
    for key, expected in (("species", SPECIES_NAMES), ("breeds", BREED_NAMES)):
        if key in metadata and tuple(c.get("name") for c in metadata[key]) != expected:
            raise ContractError(f"'{key}' names differ from the contract's list")
