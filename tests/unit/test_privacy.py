"""Unit tests for the edge pseudonymiser: MAC parsing, key file, daily rotation."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from core.privacy import (
    InvalidMac,
    KeyStore,
    Pseudonymiser,
    is_locally_administered,
    normalise_mac,
)


class Clock:
    """A settable clock (UTC) so tests can cross the rotation boundary."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# 03:59 and 04:00 Asia/Ho_Chi_Minh (UTC+7) on 2025-06-02 are 20:59 / 21:00 UTC on 06-01.
BEFORE = datetime(2025, 6, 1, 20, 59, tzinfo=UTC)
AFTER = datetime(2025, 6, 1, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "spelling",
    [
        "AA-BB-CC-DD-EE-0F",
        "aa:bb:cc:dd:ee:0f",
        "aabb.ccdd.ee0f",
        "AABBCCDDEE0F",
        " aa:bb:cc:dd:ee:0f\n",
    ],
)
def test_spellings_normalise_to_same_bytes(spelling: str) -> None:
    assert normalise_mac(spelling) == bytes.fromhex("aabbccddee0f")


@pytest.mark.parametrize(
    "bad", ["", "aa:bb:cc", "zz:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff:00", "é" * 12]
)
def test_invalid_mac_message_never_echoes_input(bad: str) -> None:
    with pytest.raises(InvalidMac) as err:
        normalise_mac(bad)
    assert bad.strip() == "" or bad not in str(err.value)


def test_locally_administered_bit() -> None:
    assert is_locally_administered("da:a1:19:00:00:01")  # iOS private address style
    assert not is_locally_administered("00:1a:2b:3c:4d:5e")  # vendor (OUI) address


def test_ids_stable_within_day_and_across_spellings(tmp_path: Path) -> None:
    p = Pseudonymiser(KeyStore(tmp_path / "k", clock=Clock(AFTER)))
    a = p.client_id("AA-BB-CC-DD-EE-FF")
    assert a == p.client_id("aabb.ccdd.eeff")
    assert len(a) == 32 and int(a, 16) >= 0
    assert a != p.client_id("aa:bb:cc:dd:ee:fe")
    assert p.pseudonymise("da:a1:19:00:00:01").randomized


def test_key_file_is_private_and_shared_between_instances(tmp_path: Path) -> None:
    clock = Clock(AFTER)
    path = tmp_path / "keys" / "hcmc.key"
    first = Pseudonymiser(KeyStore(path, scope="hcmc", clock=clock))
    second = Pseudonymiser(KeyStore(path, scope="hcmc", clock=clock))  # e.g. another site
    assert first.client_id("aa:bb:cc:dd:ee:ff") == second.client_id("aa:bb:cc:dd:ee:ff")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_rotation_at_local_time_destroys_old_key(tmp_path: Path) -> None:
    clock = Clock(BEFORE)
    store = KeyStore(tmp_path / "k", rotate_at=time(4, 0), clock=clock)
    p = Pseudonymiser(store)
    day1 = p.client_id("aa:bb:cc:dd:ee:ff")
    old_key = store.current_key()
    assert str(store.key_day()) == "2025-06-01"
    clock.now = AFTER
    day2 = p.client_id("aa:bb:cc:dd:ee:ff")
    assert day1 != day2
    assert str(store.key_day()) == "2025-06-02"
    assert old_key.hex() not in (tmp_path / "k").read_text()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["k", "k.lock"]  # no leftover copy
    # A process restarted on the same day must not get back the old key.
    assert (
        Pseudonymiser(KeyStore(tmp_path / "k", clock=clock)).client_id("aa:bb:cc:dd:ee:ff") == day2
    )


def test_other_process_rotation_is_picked_up(tmp_path: Path) -> None:
    clock = Clock(BEFORE)
    a = Pseudonymiser(KeyStore(tmp_path / "k", clock=clock))
    b = Pseudonymiser(KeyStore(tmp_path / "k", clock=clock))
    a.client_id("aa:bb:cc:dd:ee:ff")
    b.client_id("aa:bb:cc:dd:ee:ff")
    clock.now = AFTER
    assert a.client_id("aa:bb:cc:dd:ee:ff") == b.client_id("aa:bb:cc:dd:ee:ff")


def test_corrupt_or_foreign_key_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("not json")
    store = KeyStore(path, scope="hcmc", clock=Clock(AFTER))
    assert len(store.current_key()) == 32
    assert json.loads(path.read_text())["scope"] == "hcmc"
    other = KeyStore(path, scope="danang", clock=Clock(AFTER))
    assert other.current_key() != store.current_key()


def test_next_rotation(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k", clock=Clock(BEFORE))
    assert store.next_rotation().astimezone(UTC) == AFTER
