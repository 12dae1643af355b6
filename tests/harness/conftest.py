"""Self-tests of the test harness (channel, rootfs, fault kit, PyPI lock and report builders).

They prove the ground the product tests stand on, not portenv itself: kept apart from
tests/unit so that a failure here reads as a broken harness.
"""
