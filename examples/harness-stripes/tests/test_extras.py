import harness_stripes.extras

from harness import check_attack_spec, check_defense_spec


def test_extras(harness_plugin):
    registry = harness_plugin(harness_stripes.extras)
    poisoned = check_attack_spec(registry.attack("label-flip"))
    assert poisoned.is_poison.any()
    check_defense_spec(registry.defense("quantize"))
