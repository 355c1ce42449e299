"""The read model's Lua scripts touch only keys they are given in KEYS, as a cluster
requires (it routes a script by its declared keys; a key built inside a script may live on
another shard): every command's key is a `KEYS[...]` or a local taken from one."""

from __future__ import annotations

import re

import pytest

from order_processor.readmodel import scripts

SCRIPTS = {
    "APPLY": scripts.APPLY,
    "FILL_ORDER": scripts.FILL_ORDER,
    "FILL_DOCUMENT": scripts.FILL_DOCUMENT,
    "READ": scripts.READ,
}
CALL = re.compile(r"redis\.call\('(\w+)'(?:,\s*([^,)]+))?")
KEYLESS = {"TIME"}
KEYS_ITEM = re.compile(r"^KEYS\[\w+\]$")


def names_taken_from_keys(script: str) -> set[str]:
    """The locals a script assigns from KEYS (`local a, b = KEYS[1], KEYS[2]`)."""
    names: set[str] = set()
    for targets, values in re.findall(r"local\s+([\w\s,]+?)\s*=\s*([^\n]+)", script):
        for name, value in zip(targets.split(","), values.split(","), strict=False):
            if KEYS_ITEM.match(value.strip()):
                names.add(name.strip())
    return names


def undeclared_keys(script: str) -> list[tuple[str, str]]:
    """The (command, key) pairs of the script whose key is not one of its KEYS."""
    declared = names_taken_from_keys(script)
    return [
        (command, key.strip())
        for command, key in CALL.findall(script)
        if command not in KEYLESS
        and not KEYS_ITEM.match(key.strip())
        and key.strip() not in declared
    ]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_key_a_script_touches_is_one_it_was_given_in_keys(name: str) -> None:
    assert CALL.findall(SCRIPTS[name])
    assert undeclared_keys(SCRIPTS[name]) == []


def test_a_key_named_or_built_inside_a_script_is_caught() -> None:
    script = """
local order_key, other_key = KEYS[1], KEYS[1] .. ':other'
redis.call('GET', order_key)
redis.call('GET', 'op:readmodel:prices')
redis.call('DEL', other_key)
redis.call('DEL', KEYS[2] .. ':seen')
"""
    assert undeclared_keys(script) == [
        ("GET", "'op:readmodel:prices'"),
        ("DEL", "other_key"),
        ("DEL", "KEYS[2] .. ':seen'"),
    ]
