"""petseg_contract: the metadata check the service runs on every model it loads."""

from __future__ import annotations

import pytest

import petseg_contract as contract


def valid_metadata() -> dict:
    return {
        "contract_version": contract.CONTRACT_VERSION,
        "name": "m",
        "version": 1,
        "input_size": 64,
        "classes": contract.classes_metadata(),
        **contract.labels_metadata(),
    }


def test_the_contracts_own_metadata_passes() -> None:
    contract.check_metadata(valid_metadata())


def test_an_unknown_contract_version_is_refused() -> None:
    with pytest.raises(contract.ContractError, match="contract_version 99"):
        contract.check_metadata({**valid_metadata(), "contract_version": 99})


def test_swapped_class_order_is_refused() -> None:
    classes = contract.classes_metadata()
    classes[0], classes[1] = classes[1], classes[0]
    with pytest.raises(contract.ContractError, match="order"):
        contract.check_metadata({**valid_metadata(), "classes": classes})


def test_missing_keys_are_named() -> None:
    metadata = valid_metadata()
    del metadata["input_size"]
    with pytest.raises(contract.ContractError, match="input_size"):
        contract.check_metadata(metadata)


def test_breeds_follow_the_official_class_ids() -> None:
    assert len(contract.BREEDS) == 37
    assert contract.BREED_KEYS[0] == "Abyssinian" and contract.BREED_KEYS[-1] == "yorkshire_terrier"
    # Cats are the breeds whose dataset key starts with a capital letter (annotations/README).
    for key, species in zip(contract.BREED_KEYS, contract.BREED_SPECIES, strict=True):
        assert contract.SPECIES_NAMES[species] == ("cat" if key[0].isupper() else "dog")
