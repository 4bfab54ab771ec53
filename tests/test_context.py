from __future__ import annotations

import re

import pytest

from runtime_logging.context import request_id_from


class TestRequestIdFrom:
    """A caller's request id is kept only when it is a short token."""

    @pytest.mark.parametrize("incoming", ["abc-1", "A.b_c", "x" * 64])
    def test_a_token_is_kept(self, incoming):
        """Letters, digits, dot, underscore and dash, up to 64."""
        assert incoming == request_id_from(incoming)

    @pytest.mark.parametrize(
        "incoming",
        [None, "", "x" * 65, "two words", "a\nfake line", "caf\u00e9", "a=b"],
    )
    def test_anything_else_gets_a_new_id(self, incoming):
        """Absent, too long, or text that could carry into every line."""
        made = request_id_from(incoming)

        assert re.fullmatch(r"[0-9a-f]{32}", made)
        assert made != request_id_from(incoming)
